"""Near-duplicate search over 64-bit pHashes: stek's multi-index hashing against two baselines.

Run:  .venv/bin/python bench/bench_near_duplicates.py            (100k and 1M, radius 8)
      .venv/bin/python bench/bench_near_duplicates.py --sizes 100000 --radius 6

For each size, random hashes get planted near-duplicate pairs (0..radius bits apart), and
three searches run in the same session, each in its own single-threaded process so its peak
memory is its own:

* stek: `near_duplicate_pairs` (numpy multi-index hashing), the full self-join;
* brute force: popcount of every hash against a sample of queries, extrapolated to the
  full self-join (n^2 / 2 comparisons);
* FAISS `IndexBinaryMultiHash` (3 tables of 21 bits, 2 flips: exact at radius 8), with
  `range_search` over a sample of queries (all of them up to 100k), extrapolated.

Printed per method: seconds (measured or extrapolated), peak resident memory of the worker
process, and the recall of the planted pairs among the queries it ran. Target: 1M hashes at
radius 8 under 10 s on one core and under 1 GB, every planted pair found.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

PLANTED = 1000
BRUTE_FORCE_QUERIES = 200
FAISS_FULL_UP_TO = 100_000
FAISS_QUERIES = 50_000
SRC = Path(__file__).resolve().parents[1] / "src"


def hashes_with_planted_pairs(
    count: int, radius: int, seed: int = 7
) -> tuple[np.ndarray, np.ndarray]:
    """Random 64-bit hashes; the first PLANTED have a partner at the end, 0..radius bits away."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=count, dtype=np.uint64) << np.uint64(1)
    codes |= rng.integers(0, 2, size=count, dtype=np.uint64)
    pairs = np.empty((PLANTED, 2), dtype=np.int64)
    for first in range(PLANTED):
        second = count - 1 - first
        flips = rng.choice(64, size=int(rng.integers(0, radius + 1)), replace=False)
        codes[second] = codes[first] ^ np.uint64(sum(1 << int(bit) for bit in flips))
        pairs[first] = (first, second)
    return codes, pairs


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def run_stek(codes: np.ndarray, planted: np.ndarray, radius: int) -> dict[str, float]:
    sys.path.insert(0, str(SRC))
    from stek.datasets.near_duplicates import near_duplicate_pairs

    started = time.process_time()
    found = near_duplicate_pairs(codes, radius)
    seconds = time.process_time() - started
    keys = set((found[:, 0] * len(codes) + found[:, 1]).tolist())
    hits = sum(int(a) * len(codes) + int(b) in keys for a, b in planted)
    return {
        "seconds": seconds,
        "recall": hits / len(planted),
        "pairs": float(len(found)),
        "extrapolated": 0.0,
    }


def run_brute_force(codes: np.ndarray, planted: np.ndarray, radius: int) -> dict[str, float]:
    queries = planted[: BRUTE_FORCE_QUERIES // 2, 0].tolist()
    queries += (
        np.random.default_rng(1)
        .choice(len(codes), BRUTE_FORCE_QUERIES // 2, replace=False)
        .tolist()
    )
    partners = {int(a): int(b) for a, b in planted}
    started = time.process_time()
    found = 0
    for query in queries:
        close = np.flatnonzero(np.bitwise_count(codes ^ codes[query]) <= radius)
        found += query in partners and partners[query] in close
    seconds = time.process_time() - started
    full = seconds / len(queries) * len(codes) / 2  # each pair compared once in a self-join
    checked = sum(query in partners for query in queries)
    return {"seconds": full, "recall": found / checked, "pairs": float("nan"), "extrapolated": 1.0}


def run_faiss(codes: np.ndarray, planted: np.ndarray, radius: int) -> dict[str, float]:
    import faiss

    faiss.omp_set_num_threads(1)
    vectors = codes.view(np.uint8).reshape(len(codes), 8)
    index = faiss.IndexBinaryMultiHash(64, 3, 21)
    index.nflip = radius // 3  # some 21-bit table differs in at most radius // 3 bits
    started = time.process_time()
    index.add(vectors)
    added = time.process_time() - started
    if len(codes) <= FAISS_FULL_UP_TO:
        queries = np.arange(len(codes))
    else:
        rest = np.random.default_rng(2).choice(
            len(codes), FAISS_QUERIES - len(planted), replace=False
        )
        queries = np.concatenate([planted[:, 0], rest])
    started = time.process_time()
    limits, _, labels = index.range_search(vectors[queries], radius + 1)  # strictly below
    searched = time.process_time() - started
    partners = {int(a): int(b) for a, b in planted}
    found = checked = 0
    for row, query in enumerate(queries.tolist()):
        if query in partners:
            checked += 1
            found += partners[query] in labels[limits[row] : limits[row + 1]]
    full = added + searched * len(codes) / len(queries)
    return {
        "seconds": full,
        "recall": found / checked,
        "pairs": float("nan"),
        "extrapolated": float(len(queries) < len(codes)),
    }


METHODS = {"stek": run_stek, "brute_force": run_brute_force, "faiss": run_faiss}


def worker(method: str, count: int, radius: int) -> None:
    codes, planted = hashes_with_planted_pairs(count, radius)
    baseline = _peak_rss_mb()
    figures = METHODS[method](codes, planted, radius)
    figures.update(peak_rss_mb=_peak_rss_mb(), data_rss_mb=baseline)
    print(json.dumps(figures))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--radius", type=int, default=8)
    parser.add_argument(
        "--worker", nargs=3, metavar=("METHOD", "COUNT", "RADIUS"), help=argparse.SUPPRESS
    )
    arguments = parser.parse_args()
    if arguments.worker:
        worker(arguments.worker[0], int(arguments.worker[1]), int(arguments.worker[2]))
        return

    single_core = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    print(f"radius {arguments.radius}, {PLANTED} planted pairs, one core per method, CPU seconds")
    print(f"{'hashes':>9} {'method':<12} {'seconds':>9} {'':<14} {'peak RSS MB':>11} {'recall':>7}")
    for count in arguments.sizes:
        for method in METHODS:
            command = [
                sys.executable,
                __file__,
                "--worker",
                method,
                str(count),
                str(arguments.radius),
            ]
            answer = subprocess.run(
                command, capture_output=True, text=True, env=single_core, check=True
            )
            figures = json.loads(answer.stdout.strip().splitlines()[-1])
            how = "(extrapolated)" if figures["extrapolated"] else "(measured)"
            print(
                f"{count:>9} {method:<12} {figures['seconds']:>9.2f} {how:<14} "
                f"{figures['peak_rss_mb']:>11.0f} {figures['recall']:>7.3f}"
            )


if __name__ == "__main__":
    main()
