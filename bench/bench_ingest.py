"""Per-image cost of ingest inspection against the straightforward approach, same run.

    .venv/bin/python bench/bench_ingest.py            # 12-megapixel JPEG, 8 runs each
    .venv/bin/python bench/bench_ingest.py --runs 20 --megapixels 24

A photo-like 12-megapixel JPEG (smooth gradients, shapes, sensor noise; quality 90) is made
at run time. Each approach runs in its own fresh process, one core, so its peak memory is
its own:

* baseline: sha256, full decode, EXIF orientation, imagehash.phash, Pillow thumbnail;
* stek: `inspect_image` (sha256, container walk, reduced-scale JPEG decode, pHash, thumbnail).

Both must refuse the same file cut short; the figures are CPU seconds per image, images per
second per core, and the peak resident memory each process added while working.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

MAX_BYTES = 40 * 1024 * 1024
MAX_PIXELS = 100_000_000


def photo_like_jpeg(megapixels: float, seed: int = 11) -> bytes:
    """A JPEG that compresses like a photograph of cuttings on a tray."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    rng = np.random.default_rng(seed)
    y = np.linspace(0, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(0, 1, width, dtype=np.float32)[None, :]
    planes = [
        110 + 70 * np.sin(x * 3.1) * np.cos(y * 2.3),
        120 + 80 * np.cos((x + y) * 2.5),
        80 + 50 * np.sin(y * 4.0) + 0 * x,
    ]
    pixels = np.stack(planes, axis=-1)
    for _ in range(40):  # cuttings: dark green discs and stems
        cx, cy = rng.uniform(0, 1, 2)
        radius = rng.uniform(0.01, 0.05)
        disc = (x - cx) ** 2 + ((y - cy) * 0.75) ** 2 < radius**2
        pixels[disc] = rng.uniform([20, 80, 20], [90, 200, 80])
    # Sensor noise and leaf texture: at quality 90 this lands near a camera's 3-5 MB.
    pixels += rng.normal(0, 10, size=pixels.shape).astype(np.float32)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def baseline(data: bytes) -> tuple[str, str, bytes]:
    import imagehash

    sha256 = hashlib.sha256(data).hexdigest()
    image: Image.Image = Image.open(io.BytesIO(data))
    image.load()
    image = ImageOps.exif_transpose(image)
    phash = str(imagehash.phash(image))
    thumbnail = image.copy()
    thumbnail.thumbnail((256, 256))
    buffer = io.BytesIO()
    thumbnail.convert("RGB").save(buffer, "JPEG", quality=80)
    return sha256, phash, buffer.getvalue()


def stek(data: bytes) -> tuple[str, str, bytes]:
    from stek.images.inspect import inspect_image

    inspected = inspect_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)
    return inspected.sha256, inspected.phash, inspected.thumbnail_jpeg


def stek_full_decode(data: bytes) -> tuple[str, str, bytes]:
    """stek's path with libjpeg's reduced-scale decoding switched off: what `draft` buys."""
    from PIL import JpegImagePlugin

    JpegImagePlugin.JpegImageFile.draft = lambda *_: None  # type: ignore[method-assign,assignment]
    return stek(data)


APPROACHES = {"baseline": baseline, "stek-no-draft": stek_full_decode, "stek": stek}


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field):
            return int(line.split()[1])
    return 0


def measure(name: str, data: bytes, runs: int, answer: Any) -> None:
    """Runs in a fresh process: warm up once, then time `runs` images."""
    work = APPROACHES[name]
    work(data)  # imports and first-call set-up are not per-image costs
    resident = _rss_kib("VmRSS:")
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(runs):
        started_cpu, started_wall = time.process_time(), time.perf_counter()
        _, phash, _ = work(data)
        cpu.append(time.process_time() - started_cpu)
        wall.append(time.perf_counter() - started_wall)
    truncated = _refuses(work, data[: len(data) * 9 // 10])
    answer.put(
        {
            "cpu": statistics.median(cpu),
            "wall": statistics.median(wall),
            "peak_mib": (_rss_kib("VmHWM:") - resident) / 1024,
            "phash": phash,
            "truncated_refused": truncated,
        }
    )


def _refuses(work: Any, data: bytes) -> bool:
    try:
        work(data)
    except Exception:  # the baseline raises OSError, stek RejectedImage
        return True
    return False


def run_isolated(name: str, data: bytes, runs: int) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    answer = context.Queue()
    process = context.Process(target=measure, args=(name, data, runs, answer))
    process.start()
    result: dict[str, Any] = answer.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=8, help="images timed per approach")
    parser.add_argument("--megapixels", type=float, default=12.0)
    options = parser.parse_args()

    data = photo_like_jpeg(options.megapixels)
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
    print(f"image: {size[0]}x{size[1]} JPEG q90, {len(data) / 1e6:.2f} MB; {options.runs} runs")

    results = {name: run_isolated(name, data, options.runs) for name in APPROACHES}
    print(
        f"{'approach':<14}{'cpu ms/img':>12}{'wall ms/img':>13}{'img/s/core':>12}"
        f"{'peak MiB':>10}{'truncated refused':>19}"
    )
    for name, result in results.items():
        print(
            f"{name:<14}{result['cpu'] * 1000:>12.1f}{result['wall'] * 1000:>13.1f}"
            f"{1 / result['cpu']:>12.1f}{result['peak_mib']:>10.1f}"
            f"{result['truncated_refused']!s:>19}"
        )
    speedup = results["baseline"]["cpu"] / results["stek"]["cpu"]
    bits = (int(results["baseline"]["phash"], 16) ^ int(results["stek"]["phash"], 16)).bit_count()
    print(f"speed-up over baseline (cpu): {speedup:.1f}x, target >= 3x")
    print(f"stek's pHash differs from imagehash's on the full decode by {bits} of 64 bits")


if __name__ == "__main__":
    main()
