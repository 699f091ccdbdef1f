"""onnxruntime (the registry's inference path) against PyTorch eager, same model, same images,
same run; and the registry handler's import time beside boto3's.

    .venv/bin/python bench/bench_inference.py                 # 24 images, 1 thread each
    .venv/bin/python bench/bench_inference.py --images 64 --threads 2

The model is torchvision's mobilenet_v3_small with random weights (`weights=None`: nothing is
downloaded), exported to ONNX the way the runner does. Images are made at run time and
preprocessed once with `stek.registry.inference.preprocess`, so both engines get the same
tensors; both use the same number of threads. Figures are the median milliseconds per image
over repeats, after a warm-up. Target: onnxruntime at least 1.3x faster on the CPU.

Import times are measured in fresh interpreters (median of several): `import boto3` against
importing functions/registry/app.py, which must not pull in torch.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from stek.datasets.manifest import Task  # noqa: E402
from stek.modelcard import ModelCard  # noqa: E402
from stek.registry import checks  # noqa: E402
from stek.registry.inference import new_session, preprocess  # noqa: E402

TARGET = 1.3

_IMPORT_HANDLER = """
import importlib.util, sys, time
sys.path.insert(0, {src!r})
start = time.perf_counter()
spec = importlib.util.spec_from_file_location("registry_app", {app!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
took = time.perf_counter() - start
watched = ("torch", "onnx", "onnxruntime", "matplotlib", "pycocotools")
heavy = [name for name in watched if name in sys.modules]
print(took, ",".join(heavy) or "-")
"""

_IMPORT_BOTO3 = """
import time
start = time.perf_counter()
import boto3
print(time.perf_counter() - start, "-")
"""


def images(count: int, seed: int = 5) -> list[Image.Image]:
    """Tray-like pictures: a soft background with a few green blobs and sensor noise."""
    generator = np.random.default_rng(seed)
    made = []
    for _ in range(count):
        height, width = 480, 640
        rows, columns = np.mgrid[0:height, 0:width]
        canvas = np.zeros((height, width, 3), dtype=np.float32)
        canvas[..., :] = (120 + 40 * columns / width)[..., None]
        for _ in range(5):
            y, x, radius = generator.integers(40, 440), generator.integers(40, 600), 30
            blob = (rows - y) ** 2 + (columns - x) ** 2 < radius**2
            canvas[blob] = (40, 160 + generator.integers(-30, 30), 50)
        canvas += generator.normal(0, 6, canvas.shape)
        made.append(Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8)))
    return made


def exported_model(path: Path) -> object:
    import torch
    import torchvision

    model = torchvision.models.mobilenet_v3_small(weights=None, num_classes=4).eval()
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 224, 224),),
        str(path),
        dynamo=False,  # the TorchScript exporter needs no onnxscript
        input_names=["image"],
        output_names=["logits"],
        opset_version=17,
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )
    return model


def per_image_ms(run: object, tensors: list[np.ndarray], repeats: int) -> float:
    for tensor in tensors[:3]:
        run(tensor)  # type: ignore[operator]
    rounds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for tensor in tensors:
            run(tensor)  # type: ignore[operator]
        rounds.append((time.perf_counter() - start) / len(tensors) * 1000)
    return statistics.median(rounds)


def import_seconds(script: str, runs: int) -> tuple[float, str]:
    answers = []
    for _ in range(runs):
        output = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout.split()
        answers.append((float(output[0]), output[1]))
    return statistics.median(seconds for seconds, _ in answers), answers[-1][1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--import-runs", type=int, default=5)
    arguments = parser.parse_args()

    import torch

    torch.set_num_threads(arguments.threads)
    card = ModelCard(
        name="bench",
        tenant="bench",
        task=Task.CLASSIFICATION,
        architecture="mobilenet_v3_small",
        classes=["a", "b", "c", "d"],
        input_size=(224, 224),
    )
    tensors = [preprocess(image, card) for image in images(arguments.images)]

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.onnx"
        model = exported_model(path)
        content = path.read_bytes()
    parsed = checks.parse_model(content)
    checks.check_graph(content, {})  # the export passes the registry's own full check
    checks.check_card(card, "bench", "bench", checks.read_signature(parsed, 17))
    session = new_session(content, threads=arguments.threads)

    def onnxruntime_run(tensor: np.ndarray) -> np.ndarray:
        return session.run(None, {"image": tensor})[0]  # type: ignore[no-any-return]

    def torch_run(tensor: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(tensor)).numpy()  # type: ignore[operator,no-any-return]

    # Random weights give tiny logits, so the difference is shown beside their size.
    difference = max(float(np.abs(onnxruntime_run(t) - torch_run(t)).max()) for t in tensors[:4])
    magnitude = max(float(np.abs(torch_run(t)).max()) for t in tensors[:4])
    torch_ms = per_image_ms(torch_run, tensors, arguments.repeats)
    onnxruntime_ms = per_image_ms(onnxruntime_run, tensors, arguments.repeats)
    speedup = torch_ms / onnxruntime_ms

    boto3_s, _ = import_seconds(_IMPORT_BOTO3, arguments.import_runs)
    handler_script = _IMPORT_HANDLER.format(
        src=str(ROOT / "src"), app=str(ROOT / "functions" / "registry" / "app.py")
    )
    handler_s, heavy = import_seconds(handler_script, arguments.import_runs)

    print(f"model: mobilenet_v3_small (weights=None), {len(content) / 1e6:.1f} MB ONNX, opset 17")
    print(
        f"images: {len(tensors)} at 224x224, threads: {arguments.threads}, "
        f"max |ORT - torch| on logits: {difference:.2e} (logits up to {magnitude:.2e})"
    )
    print(f"{'engine':<22}{'ms/image':>10}{'images/s':>10}")
    print(f"{'PyTorch eager':<22}{torch_ms:>10.2f}{1000 / torch_ms:>10.1f}")
    print(f"{'onnxruntime (stek)':<22}{onnxruntime_ms:>10.2f}{1000 / onnxruntime_ms:>10.1f}")
    verdict = "meets" if speedup >= TARGET else "MISSES"
    print(f"onnxruntime speed-up: {speedup:.2f}x ({verdict} the {TARGET}x target)")
    print(f"import boto3:                  {boto3_s * 1000:7.0f} ms (fresh interpreter, median)")
    print(
        f"import registry handler:       {handler_s * 1000:7.0f} ms "
        f"({handler_s / boto3_s:.1f}x boto3; heavy modules loaded: {heavy})"
    )


if __name__ == "__main__":
    main()
