"""Bad and awkward uploads (TEST DATA helpers): each file has the property its name says."""

from __future__ import annotations

import io
import struct
import time
import zipfile
from collections.abc import Callable

import pytest
from PIL import Image, ImageOps, UnidentifiedImageError

from stek.synth import bad_files, decompression_bomb_png


@pytest.fixture(scope="module")
def files() -> dict[str, bytes]:
    return bad_files(seed=1)


def open_image(body: bytes) -> Image.Image:
    return Image.open(io.BytesIO(body))


def png_chunks(body: bytes) -> list[tuple[bytes, int]]:
    """(type, declared length) of each chunk of a PNG file."""
    chunks, position = [], 8
    while position < len(body):
        length, kind = struct.unpack(">I4s", body[position : position + 8])
        chunks.append((kind, length))
        position += 12 + length
    return chunks


def test_the_set_is_seeded_and_named_by_file_name(files: dict[str, bytes]) -> None:
    assert bad_files(seed=1, text_chunk_mb=1) == bad_files(seed=1, text_chunk_mb=1)
    assert all("." in name for name in files)


@pytest.mark.parametrize(
    "name", ["empty.jpg", "random-bytes.jpg", "html-page.jpg", "svg-drawing.jpg", "zip-archive.jpg"]
)
def test_non_images_named_jpg_are_not_images(files: dict[str, bytes], name: str) -> None:
    with pytest.raises(UnidentifiedImageError):
        open_image(files[name])


def test_the_non_images_are_what_their_names_say(files: dict[str, bytes]) -> None:
    assert files["empty.jpg"] == b""
    assert len(files["random-bytes.jpg"]) == 4096
    assert files["html-page.jpg"].startswith(b"<!DOCTYPE html>")
    assert b"<svg" in files["svg-drawing.jpg"]
    assert files["postscript.jpg"].startswith(b"%!PS")
    assert zipfile.is_zipfile(io.BytesIO(files["zip-archive.jpg"]))


def test_truncated_jpeg_opens_but_fails_to_load(files: dict[str, bytes]) -> None:
    picture = open_image(files["truncated.jpg"])
    assert picture.format == "JPEG"

    with pytest.raises(OSError, match="truncated"):
        picture.load()


def test_jpeg_with_zip_appended_is_both(files: dict[str, bytes]) -> None:
    body = files["jpeg-with-zip-appended.jpg"]

    picture = open_image(body)
    picture.load()
    assert picture.format == "JPEG"
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.namelist() == ["readme.txt"]


def test_huge_text_chunk_is_a_valid_png_carrying_20_mb_of_text(files: dict[str, bytes]) -> None:
    body = files["huge-text-chunk.png"]

    assert (b"tEXt", 20_000_008) in png_chunks(body)  # keyword, separator, 20 MB of text
    picture = open_image(body)
    picture.load()
    assert picture.size == (64, 64)


def test_ztxt_bomb_is_small_but_inflates_beyond_pillows_text_limit(files: dict[str, bytes]) -> None:
    body = files["ztxt-bomb.png"]

    assert len(body) < 100_000
    assert any(kind == b"zTXt" for kind, _ in png_chunks(body))
    with pytest.raises(ValueError, match="Decompressed data too large"):
        open_image(body)


@pytest.mark.parametrize(("name", "size"), [("1x1.png", (1, 1)), ("1x12000.png", (1, 12_000))])
def test_absurd_sizes_have_the_size_in_their_name(
    files: dict[str, bytes], name: str, size: tuple[int, int]
) -> None:
    picture = open_image(files[name])
    picture.load()
    assert picture.size == size


@pytest.mark.parametrize(
    ("name", "mode"),
    [("cmyk.jpg", "CMYK"), ("16-bit.png", "I;16"), ("palette-transparent.png", "P")],
)
def test_awkward_but_valid_images_have_their_mode(
    files: dict[str, bytes], name: str, mode: str
) -> None:
    picture = open_image(files[name])
    picture.load()
    assert picture.mode == mode


def test_sixteen_bit_png_declares_16_bits_and_uses_them(files: dict[str, bytes]) -> None:
    body = files["16-bit.png"]

    assert body[24] == 16  # IHDR bit depth
    _low, high = open_image(body).getextrema()
    assert isinstance(high, int)
    assert high > 255


def test_palette_png_has_transparency(files: dict[str, bytes]) -> None:
    assert "transparency" in open_image(files["palette-transparent.png"]).info


def test_exif_rotated_jpeg_has_orientation_6_and_turns_upright(files: dict[str, bytes]) -> None:
    picture = open_image(files["exif-rotated.jpg"])

    assert picture.getexif()[0x0112] == 6
    assert picture.size == (64, 48)
    assert ImageOps.exif_transpose(picture).size == (48, 64)


def test_decompression_bomb_is_small_fast_and_declares_900_megapixels(
    record_property: Callable[[str, object], None],
) -> None:
    # Given the bomb, built once
    started = time.perf_counter()
    body = decompression_bomb_png()
    seconds = time.perf_counter() - started
    record_property("bomb_seconds", round(seconds, 3))
    print(f"decompression bomb: {len(body) / 1e6:.2f} MB in {seconds:.3f} s")

    # Then it is under 5 MB, declares 30000x30000 and Pillow refuses it as a bomb
    assert len(body) < 5_000_000
    assert struct.unpack(">II", body[16:24]) == (30_000, 30_000)
    with pytest.raises(Image.DecompressionBombError):
        open_image(body)
