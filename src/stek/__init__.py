"""stek: an event-driven machine-learning portal for vision on the production line.

This package is the shared domain layer: the Lambda functions (as a layer), the GPU runner,
the CLI and the tests all import it.
"""

__version__ = "0.1.0"
