"""Synthetic pictures of cuttings for stek's demo and tests. TEST DATA, generated, not observed.

- `generate_tray`: a tray seen from above with 2-6 cuttings and a box per cutting (detection).
- `generate_cutting` / `generate_cuttings`: close-ups of single cuttings (classification).
- `near_duplicate`, `encode_jpeg`: re-encoded look-alikes for the duplicate checks.
- `bad_files`, `decompression_bomb_png`: files an ingest must reject or normalise.
- `corrupt_boxes`, `corrupt_label`: labels a dataset build must catch.

Everything is seeded: the same seed gives the same bytes. See docs/synthetic-data.md.
"""

from stek.synth.bad_files import bad_files, decompression_bomb_png
from stek.synth.bad_labels import BoxDefect, corrupt_boxes, corrupt_label
from stek.synth.cutting import SyntheticCutting, generate_cutting, generate_cuttings
from stek.synth.duplicates import encode_jpeg, near_duplicate
from stek.synth.photo import Lighting
from stek.synth.plant import CUTTING_CLASSES, NON_VIABLE, VIABLE, Condition
from stek.synth.tray import SyntheticTray, generate_tray

__all__ = [
    "CUTTING_CLASSES",
    "NON_VIABLE",
    "VIABLE",
    "BoxDefect",
    "Condition",
    "Lighting",
    "SyntheticCutting",
    "SyntheticTray",
    "bad_files",
    "corrupt_boxes",
    "corrupt_label",
    "decompression_bomb_png",
    "encode_jpeg",
    "generate_cutting",
    "generate_cuttings",
    "generate_tray",
    "near_duplicate",
]
