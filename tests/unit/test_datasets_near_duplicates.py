"""Multi-index hashing finds exactly the pairs brute force finds, at every radius."""

from __future__ import annotations

import numpy as np
import pytest

from stek.datasets.near_duplicates import (
    MAX_RADIUS,
    clusters,
    hamming,
    near_duplicate_pairs,
    parse_hashes,
)


def _brute_force(codes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    found: set[tuple[int, int]] = set()
    for i in range(len(codes)):
        distances = np.bitwise_count(codes[i + 1 :] ^ codes[i])
        found.update((i, i + 1 + int(j)) for j in np.flatnonzero(distances <= radius))
    return found


def _with_planted_pairs(
    count: int, planted: int, radius: int, seed: int
) -> tuple[np.ndarray, set[tuple[int, int]]]:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 2**63, size=count, dtype=np.uint64) * np.uint64(2) + rng.integers(
        0, 2, size=count, dtype=np.uint64
    )
    pairs = set()
    for first in range(planted):
        second = count - 1 - first
        flips = rng.choice(64, size=int(rng.integers(0, radius + 1)), replace=False)
        codes[second] = codes[first] ^ np.uint64(sum(1 << int(bit) for bit in flips))
        pairs.add((first, second))
    return codes, pairs


@pytest.mark.parametrize("radius", [0, 2, 6, 8, 12])
def test_every_planted_pair_and_nothing_beyond_the_radius(radius: int) -> None:
    codes, planted = _with_planted_pairs(1500, 40, radius, seed=radius)

    found = {tuple(pair) for pair in near_duplicate_pairs(codes, radius).tolist()}

    assert planted <= found
    assert found == _brute_force(codes, radius)


def test_crowded_buckets_match_brute_force() -> None:
    # Few distinct hashes, each repeated with small changes: most chunks collide.
    rng = np.random.default_rng(3)
    bases = rng.integers(0, 2**63, size=12, dtype=np.uint64)
    codes = bases[rng.integers(0, 12, size=800)]
    for _ in range(5):
        flips = np.uint64(1) << rng.integers(0, 64, size=800).astype(np.uint64)
        codes = codes ^ (flips * (rng.random(800) < 0.5).astype(np.uint64))

    found = {tuple(pair) for pair in near_duplicate_pairs(codes, 8).tolist()}

    assert found == _brute_force(codes, 8)


def test_radius_outside_the_supported_range_is_refused() -> None:
    with pytest.raises(ValueError, match="radius"):
        near_duplicate_pairs(np.zeros(3, dtype=np.uint64), MAX_RADIUS + 1)


def test_clusters_join_chains_and_leave_singles_out() -> None:
    pairs = np.array([[0, 3], [3, 5], [1, 2]])

    assert clusters(7, pairs) == [[0, 3, 5], [1, 2]]


def test_hex_hashes_parse_to_their_bits() -> None:
    hashes = parse_hashes(["ffffffffffffffff", "fffffffffffffff0"])

    assert int(hashes[0] ^ hashes[1]).bit_count() == 4
    assert hamming("ffffffffffffffff", "fffffffffffffff0") == 4


def test_a_burst_of_identical_hashes_pairs_every_copy() -> None:
    # A machine that photographs one tray 300 times: one crowded bucket in every chunk.
    rng = np.random.default_rng(5)
    burst = np.full(300, rng.integers(0, 2**63, dtype=np.uint64), dtype=np.uint64)
    burst[150:] ^= np.uint64(1) << rng.integers(0, 64, size=150).astype(np.uint64)
    codes = np.concatenate([burst, rng.integers(0, 2**63, size=300, dtype=np.uint64)])

    found = {tuple(pair) for pair in near_duplicate_pairs(codes, 6).tolist()}

    assert len([pair for pair in found if pair[1] < 300]) == 300 * 299 // 2
    assert found == _brute_force(codes, 6)
