"""Near-duplicate search over 64-bit perceptual hashes: every pair within a Hamming radius.

Why hand-written: the clean function runs in a Lambda layer, and FAISS (whose
`IndexBinaryMultiHash` does the same job) is far too heavy to ship there. The method is
multi-index hashing (Norouzi et al.), done as a self-join with numpy:

* the 64 bits are cut into `m` = 3 chunks of 22, 21 and 21 bits. Two hashes within
  distance r differ in at most r bits in total, so (pigeonhole) some chunk i differs in at
  most r_i bits whenever the r_i + 1 add up to more than r; with r = 8 that is 2 bits per
  chunk, so each chunk is probed with every flip mask of weight <= 2 (254 or 232 masks);
* per chunk, a direct-address table (2^21-2^22 slots) holds the full hash of the first
  member of each bucket, so a probe is one gather and one popcount per hash, with no
  search and no candidate list; hashes sorted by chunk value probe the table almost in
  order (few cache misses); the later members of crowded buckets, about a tenth of the
  hashes at 1M, are searched the same way among themselves and against the first members;
* a flip mask pairs a with b and b with a, so only the hashes whose lowest flipped bit is
  0 probe it: each unordered pair is generated once per mask, halving the work;
* candidates are verified with a popcount of the full 64-bit XOR, so nothing outside the
  radius is ever returned and every pair inside it is (the pigeonhole bound is exact).

1,000,000 random hashes at radius 8 take a few seconds on one core and well under 1 GB;
bench/bench_near_duplicates.py measures it against brute force and FAISS in one run.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import combinations

import numpy as np
import numpy.typing as npt

DEFAULT_RADIUS = 6
"""Hamming distance (of 64 pHash bits) at or below which two images count as near-duplicates.

Measured on 60 synthetic cuttings (stek.synth): a re-shot (slight crop, brightness, JPEG
re-encode) moved the pHash by 0-4 bits, while two different cuttings were never closer
than 14 bits (1st percentile 20, median 30). 6 leaves a margin on both sides.
"""

MAX_RADIUS = 12
_CHUNKS = 3
_UINT64 = np.uint64

Pairs = npt.NDArray[np.int64]  # shape (k, 2), each row (i, j) with i < j


def parse_hashes(hex_hashes: list[str]) -> npt.NDArray[np.uint64]:
    """16-hex-digit pHashes as unsigned 64-bit integers."""
    return np.array([int(value, 16) for value in hex_hashes], dtype=_UINT64)


def near_duplicate_pairs(hashes: npt.NDArray[np.uint64], radius: int = DEFAULT_RADIUS) -> Pairs:
    """Every pair (i, j), i < j, of positions whose hashes differ in at most `radius` bits."""
    if not 0 <= radius <= MAX_RADIUS:
        raise ValueError(f"radius must be between 0 and {MAX_RADIUS}")
    codes = np.ascontiguousarray(hashes, dtype=_UINT64)
    if len(codes) < 2:
        return np.empty((0, 2), dtype=np.int64)
    positions = np.arange(len(codes), dtype=np.int32)
    found = list(_pairs_with_equal_chunk(codes, positions, radius))
    for shift, width, flips in _chunk_plan(radius):
        masks = _masks_by_lowest_bit(width, flips)
        found.extend(_pairs_one_chunk_apart(codes, positions, _Chunk(shift, width), masks, radius))
    return _unique_pairs(found, len(codes))


def clusters(count: int, pairs: Pairs) -> list[list[int]]:
    """Connected groups (of 2 or more) that `pairs` link, each sorted, in order of first member."""
    parent = list(range(count))

    def root(node: int) -> int:
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    for first, second in pairs.tolist():
        a, b = root(first), root(second)
        if a != b:
            parent[max(a, b)] = min(a, b)
    groups: dict[int, list[int]] = {}
    for node in range(count):
        groups.setdefault(root(node), []).append(node)
    return [members for _, members in sorted(groups.items()) if len(members) > 1]


def hamming(first: str, second: str) -> int:
    """Bits that differ between two hex pHashes."""
    return (int(first, 16) ^ int(second, 16)).bit_count()


def _chunk_plan(radius: int) -> list[tuple[int, int, int]]:
    # (shift, width, bits to flip) per chunk; the flips add up so that their sum plus the
    # number of chunks exceeds the radius, which is what the pigeonhole argument needs.
    widths = [22, 21, 21]
    needed = max(0, radius - _CHUNKS + 1)
    flips = [needed // _CHUNKS] * _CHUNKS
    for chunk in range(needed % _CHUNKS):
        flips[chunk] += 1
    plan, shift = [], 0
    for width, flip in zip(widths, flips, strict=True):
        plan.append((shift, width, flip))
        shift += width
    return plan


def _masks_by_lowest_bit(width: int, flips: int) -> list[list[int]]:
    masks: list[list[int]] = [[] for _ in range(width)]
    for weight in range(1, flips + 1):
        for bits in combinations(range(width), weight):
            masks[bits[0]].append(sum(1 << bit for bit in bits))
    return masks


class _Chunk:
    """A run of `width` bits starting at bit `shift` of every hash."""

    def __init__(self, shift: int, width: int) -> None:
        self.shift, self.width = shift, width
        self.mask = (1 << width) - 1

    def keys(self, codes: npt.NDArray[np.uint64]) -> npt.NDArray[np.int32]:
        return ((codes >> _UINT64(self.shift)) & _UINT64(self.mask)).astype(np.int32)

    def empty_table(self) -> npt.NDArray[np.uint64]:
        # An empty bucket holds a code whose chunk is the bucket's complement: a probe
        # reaching it differs in >= width - flips > MAX_RADIUS bits, so it never verifies.
        complement = np.arange(1 << self.width, dtype=_UINT64) ^ _UINT64(self.mask)
        return complement << _UINT64(self.shift)


def _pairs_one_chunk_apart(
    codes: npt.NDArray[np.uint64],
    positions: npt.NDArray[np.int32],
    chunk: _Chunk,
    masks: list[list[int]],
    radius: int,
) -> Iterator[npt.NDArray[np.int64]]:
    """Pairs whose chunk differs by one of `masks`, among `codes`.

    A pair is probed by the member whose chunk has the mask's lowest bit clear, into the
    other's bucket. The table holds the first hash of every bucket, so that probe is one
    gather, verified in the same pass. When the other member is not first in its bucket,
    it probes instead: the later members (few) look up every member of the target bucket.
    """
    # Sorted by chunk value, probes walk the table almost in order: far fewer cache misses.
    keys = chunk.keys(codes)
    order = np.argsort(keys, kind="stable")
    keys, codes, positions = keys[order], codes[order], positions[order]
    first = np.r_[True, keys[1:] != keys[:-1]]
    table = chunk.empty_table()
    table[keys[first]] = codes[first]
    owner = np.zeros(1 << chunk.width, dtype=np.int32)
    owner[keys[first]] = positions[first]
    sizes = np.bincount(keys, minlength=1 << chunk.width).astype(np.int32)
    starts = (np.cumsum(sizes) - sizes).astype(np.int32)
    later = np.flatnonzero(~first)

    for bit, bit_masks in enumerate(masks):
        if not bit_masks:
            continue
        probers = np.flatnonzero(((keys >> bit) & 1) == 0)
        probe_keys, probe_codes, probe_positions = keys[probers], codes[probers], positions[probers]
        late = later[((keys[later] >> bit) & 1) == 1]
        for mask in bit_masks:
            targets = probe_keys ^ np.int32(mask)
            close = np.flatnonzero(_popcount(probe_codes ^ table[targets]) <= radius)
            if len(close):
                pair = np.stack([probe_positions[close], owner[targets[close]]], axis=1)
                yield np.sort(pair.astype(np.int64), axis=1)
            if len(late):
                yield _late_pairs(
                    late, keys[late] ^ np.int32(mask), sizes, starts, codes, positions, radius
                )


def _late_pairs(
    late: npt.NDArray[np.int64],
    targets: npt.NDArray[np.int32],
    sizes: npt.NDArray[np.int32],
    starts: npt.NDArray[np.int32],
    codes: npt.NDArray[np.uint64],
    positions: npt.NDArray[np.int32],
    radius: int,
) -> npt.NDArray[np.int64]:
    """Pairs of later bucket members with every member of their target buckets."""
    counts = sizes[targets]
    hit = np.flatnonzero(counts)
    counts, first_slots = counts[hit], starts[targets[hit]]
    probe = np.repeat(late[hit], counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    slots = np.repeat(first_slots, counts) + offsets
    close = np.flatnonzero(_popcount(codes[probe] ^ codes[slots]) <= radius)
    pair = np.stack([positions[probe[close]], positions[slots[close]]], axis=1)
    return np.sort(pair.astype(np.int64), axis=1)


def _pairs_with_equal_chunk(
    codes: npt.NDArray[np.uint64], positions: npt.NDArray[np.int32], radius: int
) -> Iterator[npt.NDArray[np.int64]]:
    """Pairs whose chunk is equal in some chunk; with the masks this covers distance 0."""
    for shift, width, _ in _chunk_plan(radius):
        keys = _Chunk(shift, width).keys(codes)
        order = np.argsort(keys, kind="stable")
        yield from _pairs_in_same_bucket(codes, keys[order], order.astype(np.int64), radius)


def _pairs_in_same_bucket(
    codes: npt.NDArray[np.uint64],
    sorted_keys: npt.NDArray[np.int32],
    order: npt.NDArray[np.int64],
    radius: int,
) -> Iterator[npt.NDArray[np.int64]]:
    # Within a run of equal keys, pair each member with every later one: offset by 1, 2, ...
    # Only members with a partner that far ahead stay active, so a run of k costs k^2 / 2.
    boundaries = np.r_[np.flatnonzero(np.diff(sorted_keys)) + 1, len(sorted_keys)]
    run_end = np.repeat(boundaries, np.diff(np.r_[0, boundaries]))
    active = np.flatnonzero(run_end - np.arange(len(sorted_keys)) > 1)
    offset = 1
    while len(active):
        yield _keep_close(codes, order[active], order[active + offset], radius)
        offset += 1
        active = active[run_end[active] - active > offset]


def _keep_close(
    codes: npt.NDArray[np.uint64],
    first: npt.NDArray[np.int64],
    second: npt.NDArray[np.int64],
    radius: int,
) -> npt.NDArray[np.int64]:
    close = _popcount(codes[first] ^ codes[second]) <= radius
    pairs = np.stack([first[close], second[close]], axis=1)
    return np.sort(pairs, axis=1)


def _unique_pairs(found: list[npt.NDArray[np.int64]], count: int) -> Pairs:
    if not found:
        return np.empty((0, 2), dtype=np.int64)
    pairs = np.concatenate(found)
    flat = np.unique(pairs[:, 0] * count + pairs[:, 1])
    return np.stack([flat // count, flat % count], axis=1)


_BYTE_BITS = np.array([bin(value).count("1") for value in range(256)], dtype=np.uint8)


def _popcount(values: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint8]:
    bitwise_count = getattr(np, "bitwise_count", None)  # numpy >= 2.0
    if bitwise_count is not None:
        return bitwise_count(values)  # type: ignore[no-any-return]
    as_bytes = values.view(np.uint8).reshape(-1, 8)
    return _BYTE_BITS[as_bytes].sum(axis=1, dtype=np.uint8)
