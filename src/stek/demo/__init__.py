"""`stek demo`: a whole day on the line, end to end, on the embedded emulator.

Two machines upload a few hundred synthetic pictures (TEST DATA, see docs/synthetic-data.md)
through both upload paths, mixed with corrupt files, duplicates and bad labels. Ingest runs;
two datasets are built, cleaned and frozen; a classification and a detection job are
trained on the CPU by the runner; the registry registers both models; the detection model
is validated, promoted to production and asked for one prediction. Everything goes through
the same HTTP API, queues and functions a deployment uses.
"""

from stek.demo.run import run_demo

__all__ = ["run_demo"]
