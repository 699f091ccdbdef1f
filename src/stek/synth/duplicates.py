"""Look-alike copies of a picture, for the duplicate checks. TEST DATA helpers.

An exact duplicate is simply the same bytes uploaded twice. A near duplicate is what a machine
produces when it photographs the same tray twice or a file is re-saved: a hair's crop, a touch
of brightness, another JPEG encoding. Its 64-bit DCT perceptual hash (the one imagehash.phash
computes) stays within a Hamming distance of `NEAR_DUPLICATE_MAX_DISTANCE` of the original's,
while its bytes differ.
"""

from __future__ import annotations

import io
from functools import cache

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageEnhance

NEAR_DUPLICATE_STREAM = 4
NEAR_DUPLICATE_MAX_DISTANCE = 4
HASH_SIDE = 8  # 64-bit hash
HASH_SAMPLE = 32  # the picture is shrunk to 32x32 before its DCT, as imagehash does


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    """The picture as JPEG bytes; the same picture and quality always give the same bytes."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def near_duplicate(image: Image.Image, seed: int) -> Image.Image:
    """The same scene, slightly cropped, brightened and JPEG re-encoded, at the same size.

    A random change can, on a flat picture, move a few DCT coefficients across the median and
    flip more hash bits than a near duplicate should; the change is then halved and tried again,
    and at last only the re-encoding is kept.
    """
    rng = np.random.default_rng([seed, NEAR_DUPLICATE_STREAM])
    crop = rng.uniform(0.0, 0.008, size=4)
    brightness = float(rng.uniform(-0.03, 0.03))
    quality = int(rng.integers(85, 95))

    original = perceptual_hash(image)
    for strength in (1.0, 0.5, 0.25):
        candidate = _retouch(image, crop * strength, 1 + brightness * strength, quality)
        if hash_distance(original, perceptual_hash(candidate)) <= NEAR_DUPLICATE_MAX_DISTANCE:
            return candidate
    return _retouch(image, np.zeros(4), 1.0, 95)


def _retouch(
    image: Image.Image, crop: NDArray[np.float64], brightness: float, quality: int
) -> Image.Image:
    width, height = image.size
    left, top, right, bottom = (float(share) for share in crop)
    box = (width * left, height * top, width * (1 - right), height * (1 - bottom))
    cropped = image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR, box=box)
    brighter = ImageEnhance.Brightness(cropped).enhance(brightness)
    with Image.open(io.BytesIO(encode_jpeg(brighter, quality))) as reencoded:
        return reencoded.convert("RGB")


def perceptual_hash(image: Image.Image) -> NDArray[np.bool_]:
    """The 64-bit DCT hash of imagehash.phash, in numpy alone (no scipy in the functions)."""
    small = image.convert("L").resize((HASH_SAMPLE, HASH_SAMPLE), Image.Resampling.LANCZOS)
    pixels = np.asarray(small, dtype=np.float64)
    basis = _dct_basis()
    coefficients = (basis @ pixels @ basis.T)[:HASH_SIDE, :HASH_SIDE]
    return np.asarray(coefficients > np.median(coefficients))


def hash_distance(first: NDArray[np.bool_], second: NDArray[np.bool_]) -> int:
    return int(np.count_nonzero(first != second))


@cache
def _dct_basis() -> NDArray[np.float64]:
    """The unnormalised DCT-II matrix that scipy.fftpack.dct applies along one axis."""
    k = np.arange(HASH_SAMPLE)[:, None]
    n = np.arange(HASH_SAMPLE)[None, :]
    return np.asarray(2 * np.cos(np.pi * k * (2 * n + 1) / (2 * HASH_SAMPLE)), dtype=np.float64)
