"""`python -m gpu_runner`: poll the training queue and train jobs until SIGTERM."""

from gpu_runner.runner import main

main()
