"""Images per second through the runner's input pipeline: emulated S3 vs local disk.

    .venv/bin/python bench/bench_input_pipeline.py [--images 300] [--size 256] [--rounds 3]

Both paths decode and augment the same JPEGs with the same training transforms. The S3 path
goes through the runner's image cache against a moto server on 127.0.0.1 (free port): its
first epoch downloads every image, later epochs read the cache. The baseline reads the same
files from a local folder in the same run. Target: warm-cache epoch >= 0.9x local disk.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import random
import socket
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import boto3
import torch
from botocore.config import Config
from moto.server import ThreadedMotoServer

from gpu_runner import data
from gpu_runner.synthetic import synthetic_image
from stek.datasets.manifest import ManifestEntry, Split, Task

BUCKET = "bench-raw"
TARGET = 0.9
CLASSES = ["healthy", "wilted"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_images(s3: Any, folder: Path, count: int, size: int) -> list[ManifestEntry]:
    rng = random.Random(0)
    entries = []
    for number in range(count):
        body, label, _ = synthetic_image(
            Task.CLASSIFICATION, ["healthy", "wilted"], (size, size), rng
        )
        key = f"bench/{number:05d}.jpg"
        s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        (folder / f"{number:05d}.jpg").write_bytes(body)
        entries.append(
            ManifestEntry(
                image_id=key,
                bucket=BUCKET,
                key=key,
                sha256=hashlib.sha256(body).hexdigest(),
                width=size,
                height=size,
                split=Split.TRAIN,
                label=label,
            )
        )
    return entries


def epoch_rate(entries: list[ManifestEntry], locate: data.Locate, before: Any = None) -> float:
    """Images per second for one pass: (optional cache warm-up) + decode + augment + batch."""
    dataset = data.ManifestDataset(
        entries,
        CLASSES,
        Task.CLASSIFICATION,
        locate,
        data.transforms(Task.CLASSIFICATION, 224, train=True, augment=True),
    )
    started = time.perf_counter()
    if before is not None:
        before()
    for _ in data.loader(dataset, batch_size=32, workers=0, order=list(range(len(dataset)))):
        pass
    return len(entries) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    torch.set_num_threads(1)  # the same compute budget for both paths; a runner uses workers

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        s3 = boto3.client(
            "s3",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
        )
        s3.create_bucket(Bucket=BUCKET)
        with tempfile.TemporaryDirectory(prefix="stek-bench-") as scratch:
            local, cache_dir = Path(scratch) / "local", Path(scratch) / "cache"
            local.mkdir()
            entries = write_images(s3, local, arguments.images, arguments.size)
            cache = data.ImageCache(s3, cache_dir)

            def on_disk(entry: ManifestEntry) -> Path:
                return local / Path(entry.key).name

            epoch_rate(entries, on_disk)  # the page cache is warm for the baseline too
            cold = epoch_rate(entries, cache.locate, before=lambda: cache.warm(entries))
            local_rates, warm_rates = [], []
            for _ in range(arguments.rounds):  # interleaved, so drift hits both alike
                local_rates.append(epoch_rate(entries, on_disk))
                warm_rates.append(epoch_rate(entries, cache.locate))
    finally:
        server.stop()

    disk, warm = statistics.median(local_rates), statistics.median(warm_rates)
    ratio = warm / disk
    print(f"input pipeline, {arguments.images} JPEGs of {arguments.size} px -> 224 px, batch 32")
    print(f"  local disk (baseline)        {disk:8.1f} images/s")
    print(f"  S3 epoch 1 (cold, download)  {cold:8.1f} images/s  ({cold / disk:.2f}x)")
    print(f"  S3 epoch 2+ (warm cache)     {warm:8.1f} images/s  ({ratio:.2f}x)")
    print(f"  target warm >= {TARGET:.1f}x local: {'met' if ratio >= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
