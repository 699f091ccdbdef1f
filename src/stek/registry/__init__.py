"""The model registry: ONNX model versions with cards and lineage, aliases, validations and
predictions. Imports no PyTorch; onnx, onnxruntime and matplotlib load only where needed."""
