"""The GPU runner: a long-running process that takes training jobs from the training queue.

`python -m gpu_runner` starts it; see `runner.py` for the queue loop and `train.py` for what
one job does. It is the only part of stek that imports PyTorch.
"""
