"""Exact and near duplicates of synthetic pictures (TEST DATA helpers)."""

from __future__ import annotations

import hashlib
import io

import imagehash
import pytest
from PIL import Image

from stek.synth import encode_jpeg, generate_cutting, generate_tray, near_duplicate
from stek.synth.duplicates import hash_distance, perceptual_hash


@pytest.mark.parametrize("seed", range(10))
def test_near_duplicate_keeps_the_perceptual_hash_within_4_bits(seed: int) -> None:
    # Given a tray and a cutting picture
    for original in (generate_tray(seed).image, generate_cutting(seed).image):
        # When a near duplicate is made of each
        copy = near_duplicate(original, seed)

        # Then it has the same size, other bytes, and a 64-bit phash at most 4 bits away
        assert copy.size == original.size
        assert encode_jpeg(copy) != encode_jpeg(original)
        assert imagehash.phash(copy) - imagehash.phash(original) <= 4


def test_near_duplicate_is_seeded() -> None:
    original = generate_tray(1).image

    assert near_duplicate(original, 3).tobytes() == near_duplicate(original, 3).tobytes()
    assert near_duplicate(original, 3).tobytes() != near_duplicate(original, 4).tobytes()


def test_own_hash_agrees_with_imagehash() -> None:
    # The guard inside near_duplicate must measure what the duplicate checks will measure.
    for seed in range(5):
        picture = generate_tray(seed).image
        reference = imagehash.phash(picture).hash
        assert hash_distance(perceptual_hash(picture), reference) == 0


def test_exact_duplicates_are_the_same_bytes() -> None:
    # Encoding the same synthetic picture twice gives identical files: an exact duplicate
    first = encode_jpeg(generate_tray(2).image)
    second = encode_jpeg(generate_tray(2).image)

    assert hashlib.sha256(first).digest() == hashlib.sha256(second).digest()


def test_encode_jpeg_gives_a_readable_jpeg_of_the_requested_quality() -> None:
    picture = generate_cutting(1).image

    small, large = encode_jpeg(picture, quality=50), encode_jpeg(picture, quality=95)

    assert len(small) < len(large)
    with Image.open(io.BytesIO(large)) as decoded:
        assert (decoded.format, decoded.mode, decoded.size) == ("JPEG", "RGB", picture.size)
