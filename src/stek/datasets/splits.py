"""Deterministic splits: the same images always land in the same split.

A group of look-alikes (near-duplicates) goes to one split as a whole, so no picture of the
same cutting is trained on and tested on. The group's split is, in order of precedence:

1. the split its images had in the parent version, so an image keeps its split as the
   dataset grows (the representative's, when the group's members disagree);
2. the split the import asked for (COCO/YOLO/VOC files name their splits);
3. a hash of the group's representative id, mapped onto the configured ratios.

Members whose own split (parent or requested) differs from their group's are leaks; they
move to the group's split, and the leakage rule reports them.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from stek.datasets.manifest import Split


@dataclass(frozen=True)
class SplitClaim:
    """What decides one image's split: earlier versions first, then what the source asked."""

    image_id: str
    parent: Split | None
    requested: Split | None

    @property
    def own(self) -> Split | None:
        return self.parent or self.requested


@dataclass(frozen=True)
class Move:
    image_id: str
    representative: str
    from_split: Split
    to_split: Split


def hashed_split(representative: str, ratios: dict[Split, float]) -> Split:
    """The split a group gets by hash: a fixed point in [0, 1) cut by the ratios."""
    point = int(hashlib.sha256(representative.encode()).hexdigest()[:12], 16) / float(1 << 48)
    total = sum(ratios.values())
    edge = 0.0
    for split in Split:
        edge += ratios.get(split, 0.0) / total
        if point < edge:
            return split
    return Split.TRAIN


def assign_splits(
    groups: list[list[SplitClaim]], ratios: dict[Split, float]
) -> tuple[dict[str, Split], list[Move]]:
    """The split of every image (groups: representative first) and the moves that stop leaks."""
    splits: dict[str, Split] = {}
    moves: list[Move] = []
    for group in groups:
        split = _group_split(group, ratios)
        representative = group[0].image_id
        for claim in group:
            splits[claim.image_id] = split
            if claim.own is not None and claim.own is not split:
                moves.append(Move(claim.image_id, representative, claim.own, split))
    return splits, moves


def _group_split(group: list[SplitClaim], ratios: dict[Split, float]) -> Split:
    representative = group[0]
    for attribute in ("parent", "requested"):
        claimed = [getattr(claim, attribute) for claim in group if getattr(claim, attribute)]
        if not claimed:
            continue
        own = getattr(representative, attribute)
        if own is not None:
            return own  # type: ignore[no-any-return]
        counts = Counter(claimed)
        return max(Split, key=lambda split: (counts[split], -list(Split).index(split)))
    return hashed_split(representative.image_id, ratios)
