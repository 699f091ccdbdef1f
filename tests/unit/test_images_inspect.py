"""inspect_image: every kind of good and bad file ends accepted or refused with a reason."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from stek.errors import RejectedImage
from stek.images import inspect as inspection
from stek.images.inspect import inspect_image, phash_distance

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "images"
MAX_BYTES = 40 * 1024 * 1024
MAX_PIXELS = 100_000_000


def _inspect(data: bytes, **limits: int) -> inspection.InspectedImage:
    return inspect_image(
        data,
        max_bytes=limits.get("max_bytes", MAX_BYTES),
        max_pixels=limits.get("max_pixels", MAX_PIXELS),
    )


def _rejection(data: bytes, **limits: int) -> RejectedImage:
    with pytest.raises(RejectedImage) as caught:
        _inspect(data, **limits)
    return caught.value


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _encoded(image: Image.Image, image_format: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)  # type: ignore[arg-type]
    return buffer.getvalue()


def _photo_like(width: int, height: int, seed: int = 3) -> Image.Image:
    """Smooth gradients, shapes and sensor noise: compresses like a photograph."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 120 + 80 * np.sin(x / width * 3.1) * np.cos(y / height * 2.3)
    green = 100 + 90 * np.cos((x + y) / (width + height) * 5.0)
    blue = 90 + 60 * np.sin(y / height * 4.0)
    pixels = np.stack([red, green, blue], axis=-1)
    for _ in range(12):
        cx, cy, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.03, 0.15) * width
        disc = (x - cx) ** 2 + (y - cy) ** 2 < r**2
        pixels[disc] = rng.uniform(20, 235, size=3)
    pixels += rng.normal(0, 6, size=pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="module")
def portrait() -> Image.Image:
    return Image.open(FIXTURES / "photo_portrait.jpg").convert("RGB")


# ------------------------------------------------------------------------- good images


@pytest.mark.parametrize(
    ("name", "image_format", "size"),
    [
        ("photo_portrait.jpg", "JPEG", (512, 600)),
        ("photo_board.jpg", "JPEG", (720, 477)),
        ("photo_board_exif.jpg", "JPEG", (720, 477)),
        ("photo_product_rgba.png", "PNG", (128, 128)),
        ("exif_rotated.jpg", "JPEG", (512, 600)),
        ("cmyk.jpg", "JPEG", (512, 600)),
        ("grey16.png", "PNG", (512, 600)),
        ("palette.png", "PNG", (512, 600)),
        ("palette_transparent.png", "PNG", (512, 600)),
        ("photo.webp", "WEBP", (512, 600)),
        ("photo.tiff", "TIFF", (256, 300)),
        ("photo.bmp", "BMP", (256, 300)),
    ],
)
def test_real_photographs_and_awkward_modes_are_accepted(
    name: str, image_format: str, size: tuple[int, int]
) -> None:
    # Given a photograph in one of the accepted formats or modes
    data = _fixture(name)

    # When it is inspected
    inspected = _inspect(data)

    # Then its format and displayed size are known, and the thumbnail is a small JPEG
    assert (inspected.format, (inspected.width, inspected.height)) == (image_format, size)
    assert len(inspected.sha256) == 64
    assert len(inspected.phash) == 16
    thumbnail = Image.open(io.BytesIO(inspected.thumbnail_jpeg))
    assert thumbnail.format == "JPEG"
    assert thumbnail.mode in ("RGB", "L")
    assert max(thumbnail.size) <= inspection.THUMBNAIL_SIZE


def test_every_mode_of_the_same_picture_hashes_alike() -> None:
    # Given the same portrait as stored upright, EXIF-rotated, CMYK, 16-bit, palette, ...
    names = [
        "exif_rotated.jpg",
        "cmyk.jpg",
        "grey16.png",
        "palette.png",
        "photo.webp",
        "photo.tiff",
        "photo.bmp",
        "palette_transparent.png",
    ]
    reference = _inspect(_fixture("photo_portrait.jpg")).phash

    # When each is hashed
    distances = {name: phash_distance(_inspect(_fixture(name)).phash, reference) for name in names}

    # Then each is the same picture (16-bit grey is not turned white; rotation is undone)
    assert max(distances.values()) <= 4, distances


def test_exif_rotation_is_applied_to_size_and_thumbnail() -> None:
    inspected = _inspect(_fixture("exif_rotated.jpg"))

    thumbnail = Image.open(io.BytesIO(inspected.thumbnail_jpeg))

    assert (inspected.width, inspected.height) == (512, 600)
    assert thumbnail.width < thumbnail.height  # portrait, as displayed


def test_16_bit_grey_keeps_its_contrast() -> None:
    inspected = _inspect(_fixture("grey16.png"))

    thumbnail = np.asarray(Image.open(io.BytesIO(inspected.thumbnail_jpeg)).convert("L"))

    assert thumbnail.std() > 20  # Pillow's plain conversion would clip it to white


def test_transparent_pixels_are_shown_over_white(portrait: Image.Image) -> None:
    # Given a picture whose left half is fully transparent
    rgba = portrait.convert("RGBA")
    alpha = np.full((rgba.height, rgba.width), 255, dtype=np.uint8)
    alpha[:, : rgba.width // 2] = 0
    rgba.putalpha(Image.fromarray(alpha, "L"))

    inspected = _inspect(_encoded(rgba, "PNG"))

    thumbnail = np.asarray(Image.open(io.BytesIO(inspected.thumbnail_jpeg)).convert("L"))
    assert thumbnail[:, : thumbnail.shape[1] // 3].mean() > 245


@pytest.mark.parametrize("mode", ["LA", "1", "I;16", "CMYK", "I"])
def test_other_modes_in_tiff_are_accepted(portrait: Image.Image, mode: str) -> None:
    grey = np.asarray(portrait.convert("L"), dtype=np.uint16) * 257
    image = Image.fromarray(grey) if mode.startswith("I") else portrait.convert(mode)
    if mode == "I":
        image = image.convert("I")

    inspected = _inspect(_encoded(image, "TIFF"))

    assert inspected.format == "TIFF"
    assert phash_distance(inspected.phash, _inspect(_fixture("photo_portrait.jpg")).phash) <= 8


def test_phash_matches_imagehash_on_a_reduced_decode() -> None:
    # Given a 2-megapixel photo-like JPEG: inspection decodes it at reduced scale
    photo = _photo_like(2048, 1536)
    data = _encoded(photo, "JPEG", quality=90)

    # When hashed by inspection and by imagehash on the full decode
    ours = _inspect(data).phash
    theirs = str(imagehash.phash(Image.open(io.BytesIO(data))))

    # Then the hashes agree to within a few bits
    assert phash_distance(ours, theirs) <= 6


def test_phash_is_imagehash_bit_for_bit_on_the_same_pixels(portrait: Image.Image) -> None:
    assert inspection.perceptual_hash(portrait) == str(imagehash.phash(portrait))


def test_phash_distance_counts_differing_bits() -> None:
    assert phash_distance("0000000000000000", "0000000000000000") == 0
    assert phash_distance("0000000000000000", "ffffffffffffffff") == 64
    assert phash_distance("8000000000000001", "0000000000000000") == 2


# -------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("name", "reason", "words"),
    [
        ("empty.jpg", "empty", "0 bytes"),
        ("random.jpg", "not_an_image", "no known image"),
        ("page_html.jpg", "not_an_image", "HTML"),
        ("drawing_svg.jpg", "not_an_image", "SVG"),
        ("document_ps.jpg", "not_an_image", "PostScript"),
        ("archive_zip.jpg", "not_an_image", "ZIP"),
        ("animation_gif.jpg", "unsupported_format", "GIF"),
        ("truncated.jpg", "truncated", "ends early"),
        ("jpeg_with_zip.jpg", "trailing_data", "ZIP"),
        ("one_by_one.png", "too_small", "1x1"),
        ("one_by_12000.png", "too_small", "1x12000"),
        ("ztxt_bomb.png", "oversized_metadata", "MAX_TEXT"),
    ],
)
def test_bad_files_are_refused_with_a_specific_reason(name: str, reason: str, words: str) -> None:
    rejection = _rejection(_fixture(name))

    assert rejection.reason == reason
    assert words in rejection.detail


def test_non_images_never_reach_a_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given Pillow would fail the test if anything were handed to it
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("a non-image reached Pillow")

    monkeypatch.setattr(Image, "open", refuse)

    # When PostScript (which Pillow hands to Ghostscript) and others are inspected
    reasons = {
        name: _rejection(_fixture(name)).reason for name in ("document_ps.jpg", "page_html.jpg")
    }

    # Then content sniffing refused them first
    assert reasons == {"document_ps.jpg": "not_an_image", "page_html.jpg": "not_an_image"}


def test_decoder_sees_only_the_sniffed_format(monkeypatch: pytest.MonkeyPatch) -> None:
    formats_asked: list[object] = []
    real_open = Image.open

    def spy(fp: object, mode: str = "r", formats: object = None) -> Image.Image:
        formats_asked.append(formats)
        return real_open(fp, mode, formats)  # type: ignore[arg-type]

    monkeypatch.setattr(Image, "open", spy)

    _inspect(_fixture("photo.webp"))

    assert formats_asked == [["WEBP"]]


def test_a_900_megapixel_png_is_refused_before_decoding() -> None:
    # Given a real 30000x30000 one-bit PNG (a ~110 KB decompression bomb)
    header = struct.pack(">IIBBBBB", 30000, 30000, 1, 0, 0, 0, 0)
    rows = zlib.compressobj(9)
    row = b"\x00" * (1 + 30000 // 8)
    stream = b"".join(rows.compress(row * 1000) for _ in range(30)) + rows.flush()
    data = (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", stream)
        + _png_chunk(b"IEND", b"")
    )

    rejection = _rejection(data)

    assert rejection.reason == "too_many_pixels"
    assert "900000000 pixels" in rejection.detail


def test_pixel_limit_is_checked_from_the_header() -> None:
    rejection = _rejection(_fixture("photo_portrait.jpg"), max_pixels=100_000)

    assert rejection.reason == "too_many_pixels"


def test_a_png_with_a_huge_text_chunk_is_refused(portrait: Image.Image) -> None:
    png = _encoded(portrait.reduce(4), "PNG")
    text = _png_chunk(b"tEXt", b"Comment\x00" + b"x" * (2 * 1024 * 1024))

    rejection = _rejection(png[:-12] + text + png[-12:])

    assert rejection.reason == "oversized_metadata"


def test_files_over_the_byte_limit_are_refused_unread() -> None:
    rejection = _rejection(_fixture("photo_board.jpg"), max_bytes=1000)

    assert rejection.reason == "too_large"


@pytest.mark.parametrize("keep", [0.05, 0.5, 0.9, 0.999])
def test_truncated_jpeg_is_caught_at_any_length(keep: float) -> None:
    data = _encoded(_photo_like(1600, 1200), "JPEG", quality=90)

    rejection = _rejection(data[: int(len(data) * keep)])

    assert rejection.reason == "truncated"


def test_a_jpeg_missing_only_its_end_marker_is_truncated() -> None:
    assert _rejection(_fixture("photo_portrait.jpg")[:-2]).reason == "truncated"


def test_jpeg_padding_after_the_end_marker_is_tolerated() -> None:
    inspected = _inspect(_fixture("photo_portrait.jpg") + b"\x00" * 64)

    assert inspected.format == "JPEG"


@pytest.mark.parametrize("image_format", ["PNG", "WEBP", "TIFF", "BMP"])
def test_other_truncated_formats_are_caught(portrait: Image.Image, image_format: str) -> None:
    data = _encoded(portrait, image_format)

    rejection = _rejection(data[: int(len(data) * 0.6)])

    assert rejection.reason == "truncated"


def test_png_with_a_bad_checksum_is_corrupt(portrait: Image.Image) -> None:
    data = bytearray(_encoded(portrait.reduce(2), "PNG"))
    idat = data.index(b"IDAT")
    data[idat + 100] ^= 0xFF

    assert _rejection(bytes(data)).reason == "corrupt"


def test_png_with_a_zip_appended_has_trailing_data(portrait: Image.Image) -> None:
    data = _encoded(portrait.reduce(4), "PNG") + _fixture("archive_zip.jpg")

    assert _rejection(data).reason == "trailing_data"


@pytest.mark.parametrize(
    "options",
    [
        {"progressive": True},
        {"restart_marker_rows": 1},
        {"subsampling": 0, "quality": 95},
    ],
)
def test_jpeg_encodings_walk_to_their_end(
    portrait: Image.Image, options: dict[str, object]
) -> None:
    data = _encoded(portrait, "JPEG", **options)

    assert _inspect(data).format == "JPEG"
    assert _rejection(data[: len(data) - 40]).reason == "truncated"


def test_a_second_picture_after_the_first_is_not_trailing_data(portrait: Image.Image) -> None:
    # Multi-picture files (MPF) keep more JPEG frames after the first one's end marker.
    data = _encoded(portrait, "JPEG") + _encoded(portrait.reduce(4), "JPEG")

    assert _inspect(data).format == "JPEG"


SYNTH_EXPECTED = {
    "empty.jpg": "empty",
    "random-bytes.jpg": "not_an_image",
    "html-page.jpg": "not_an_image",
    "svg-drawing.jpg": "not_an_image",
    "postscript.jpg": "not_an_image",
    "zip-archive.jpg": "not_an_image",
    "truncated.jpg": "truncated",
    "jpeg-with-zip-appended.jpg": "trailing_data",
    "huge-text-chunk.png": "oversized_metadata",
    "ztxt-bomb.png": "oversized_metadata",
    "1x1.png": "too_small",
    "1x12000.png": "too_small",
    "cmyk.jpg": None,
    "16-bit.png": None,
    "palette-transparent.png": None,
    "exif-rotated.jpg": None,
}


def test_the_synthetic_bad_file_set_ends_as_documented() -> None:
    # Given the bad files stek.synth makes independently of these fixtures
    from stek.synth import bad_files, decompression_bomb_png

    files = bad_files(5)
    files["bomb.png"] = decompression_bomb_png()

    # When each is inspected
    outcomes: dict[str, str | None] = {}
    for name, data in files.items():
        try:
            _inspect(data)
            outcomes[name] = None
        except RejectedImage as rejection:
            outcomes[name] = rejection.reason

    # Then each is accepted or refused with the reason docs/synthetic-data.md expects
    assert outcomes == {**SYNTH_EXPECTED, "bomb.png": "too_many_pixels"}
    assert _inspect(files["exif-rotated.jpg"]).width == 48
