"""Training jobs: the request schema, the job record and its lease, and the queue message.

Shared by the train_dispatch function (which creates jobs) and the GPU runner (which leases
and trains them). Nothing here imports PyTorch: functions stay light.
"""
