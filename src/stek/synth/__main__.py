"""Draw an example synthetic tray (TEST DATA) beside its boxes, to look at the generator.

python -m stek.synth docs/img/synthetic-tray.png --seed 3
"""

from __future__ import annotations

import argparse
from pathlib import Path

from PIL import Image, ImageDraw

from stek.synth.plant import VIABLE
from stek.synth.tray import SyntheticTray, generate_tray

BOX_COLOURS = {VIABLE: (64, 220, 255), "non_viable": (255, 64, 160)}


def example(tray: SyntheticTray) -> Image.Image:
    """The tray as the camera saw it (left) and with its labelled boxes drawn (right)."""
    width, height = tray.image.size
    sheet = Image.new("RGB", (width * 2 + 8, height), (255, 255, 255))
    sheet.paste(tray.image, (0, 0))
    labelled = tray.image.copy()
    pen = ImageDraw.Draw(labelled)
    for box in tray.boxes:
        colour = BOX_COLOURS[box.label]
        pen.rectangle((box.x1, box.y1, box.x2, box.y2), outline=colour, width=2)
        pen.text((box.x1 + 3, box.y1 + 1), box.label, fill=colour)
    sheet.paste(labelled, (width + 8, 0))
    # A palette of 256 colours keeps the example small enough for the documentation.
    return sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", type=Path, help="PNG file to write")
    parser.add_argument("--seed", type=int, default=3)
    arguments = parser.parse_args()
    example(generate_tray(arguments.seed)).save(arguments.output, optimize=True)
    print(f"wrote {arguments.output} (synthetic test data, seed {arguments.seed})")


if __name__ == "__main__":
    main()
