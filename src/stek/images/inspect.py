"""Inspect one uploaded file: is it an acceptable image, and what are its fingerprints?

The checks run from cheapest to dearest, and nothing reaches a decoder before the cheap ones
pass:

1. size: empty or over the byte limit;
2. content sniffing: the magic bytes must be JPEG, PNG, WebP, TIFF or BMP, whatever the file
   is called; HTML, SVG, PostScript, PDF, ZIP and the like are named in the reason;
3. container walk (JPEG markers, PNG chunks, the RIFF size of WebP): finds truncated files
   and data after the image's end without decoding a pixel;
4. header: dimensions against the pixel limit (decompression bombs) and a minimum side;
5. one reduced decode: JPEG is decoded at 1/2-1/8 scale by libjpeg's DCT scaling (Pillow's
   `draft`), other formats in full; the decoder still consumes every byte, so a truncated
   or corrupt stream fails here. That small picture, EXIF orientation applied, gives both
   the perceptual hash and the thumbnail.

A JPEG with data after its end-of-image marker (a ZIP appended, say) is rejected with reason
`trailing_data`: the original is what datasets copy and export, and a polyglot file would
carry an archive through under an image's name. Zero/0xFF padding and the extra JPEG frames
of a multi-picture (MPF) file are not counted as trailing data.

Pillow is only ever handed the one format the content was sniffed as, so no other plugin
(EPS, which runs Ghostscript, among them) sees an upload.
"""

from __future__ import annotations

import hashlib
import io
import re
import struct
from collections.abc import Callable

import numpy as np
from PIL import Image
from pydantic import BaseModel

from stek.errors import RejectedImage

ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP")
THUMBNAIL_SIZE = 256  # longest side of a thumbnail, in pixels
THUMBNAIL_QUALITY = 80
MIN_SIDE = 8  # a frame thinner than this is a capture fault, not a picture of a cutting
MAX_TEXT_METADATA_BYTES = 1024 * 1024  # PNG tEXt/zTXt/iTXt chunks, raw, all together

_HASH_SIZE = 8
_HASH_INPUT = _HASH_SIZE * 4  # imagehash's phash: 32x32 grey, keep the 8x8 lowest frequencies

_ORIENTATION_TAG = 0x0112
_SIDEWAYS = frozenset({5, 6, 7, 8})
_ORIENTATIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# A marker ends a JPEG scan: 0xFF followed by anything but a stuffed zero, a restart marker
# or another 0xFF (a fill byte; the marker is at the last one). No repetition in the pattern:
# `\xff+` backtracks at every 0xFF and is ten times slower on a 12-megapixel photograph.
_END_OF_SCAN = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


class InspectedImage(BaseModel):
    """What inspection learned about an acceptable image."""

    sha256: str
    phash: str  # 16 hex chars
    width: int  # as displayed: EXIF orientation applied
    height: int
    format: str  # one of ACCEPTED_FORMATS
    thumbnail_jpeg: bytes


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int) -> InspectedImage:
    """Validate and fingerprint one file; raises RejectedImage(reason, detail) if unacceptable."""
    _check_size(data, max_bytes)
    image_format = sniff_format(data)
    _CONTAINER_CHECKS.get(image_format, _no_container_check)(data)

    # Pillow's own bomb guard follows the ingest limit, as a backstop to the check below.
    Image.MAX_IMAGE_PIXELS = max_pixels
    with _open(data, image_format) as image:
        width, height = _check_dimensions(image, max_pixels)
        picture, orientation = _decode_reduced(image)
    if orientation in _SIDEWAYS:
        width, height = height, width

    return InspectedImage(
        sha256=hashlib.sha256(data).hexdigest(),
        phash=perceptual_hash(picture),
        width=width,
        height=height,
        format=image_format,
        thumbnail_jpeg=_thumbnail(picture),
    )


def phash_distance(a: str, b: str) -> int:
    """Hamming distance of two hex perceptual hashes (0 = same picture, 64 = opposite)."""
    return (int(a, 16) ^ int(b, 16)).bit_count()


def perceptual_hash(picture: Image.Image) -> str:
    """64-bit DCT hash, computed the way imagehash's `phash` does (hash_size 8).

    32x32 grey (Lanczos), 2-D DCT-II, the 8x8 lowest frequencies against their median; bits
    row-major, first bit most significant. The DCT's scale factors do not change which
    coefficients lie above the median, so a plain cosine matrix is enough (no SciPy).
    """
    grey = picture.convert("L").resize((_HASH_INPUT, _HASH_INPUT), Image.Resampling.LANCZOS)
    pixels = np.asarray(grey, dtype=np.float64)
    cosines = _dct_matrix(_HASH_INPUT)
    frequencies = cosines @ pixels @ cosines.T
    lowest = frequencies[:_HASH_SIZE, :_HASH_SIZE]
    bits = (lowest > np.median(lowest)).flatten()
    value = int("".join("1" if bit else "0" for bit in bits), 2)
    return f"{value:016x}"


def _dct_matrix(size: int) -> np.ndarray:
    k = np.arange(size).reshape(-1, 1)
    n = np.arange(size).reshape(1, -1)
    return np.cos(np.pi * k * (2 * n + 1) / (2 * size))


# ------------------------------------------------------------------------ size and content


def _check_size(data: bytes, max_bytes: int) -> None:
    if not data:
        raise RejectedImage("empty", "the file is empty (0 bytes)")
    if len(data) > max_bytes:
        raise RejectedImage("too_large", f"{len(data)} bytes is over the limit of {max_bytes}")


def sniff_format(data: bytes) -> str:
    """The accepted format the content is, by its magic bytes; RejectedImage otherwise."""
    head = data[:16]
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if head.startswith(b"BM") and len(data) >= 26:
        return "BMP"
    raise _not_accepted(data)


_OTHER_IMAGE_FORMATS = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
    (b"\xff\x4f\xff\x51", "JPEG 2000"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"8BPS", "Photoshop"),
    (b"\x76\x2f\x31\x01", "OpenEXR"),
)
_DOCUMENTS = (
    (b"%!PS", "PostScript"),
    (b"\xc5\xd0\xd3\xc6", "PostScript (EPS)"),
    (b"%PDF", "PDF"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x7fELF", "an executable"),
    (b"MZ", "an executable"),
)


def _not_accepted(data: bytes) -> RejectedImage:
    accepted = "JPEG, PNG, WebP, TIFF or BMP"
    for magic, name in _OTHER_IMAGE_FORMATS:
        if data.startswith(magic):
            return RejectedImage("unsupported_format", f"{name} image; stek accepts {accepted}")
    if data[4:8] == b"ftyp":
        return RejectedImage("unsupported_format", f"HEIF/AVIF or video; stek accepts {accepted}")
    for magic, name in _DOCUMENTS:
        if data.startswith(magic):
            return RejectedImage("not_an_image", f"content is {name}, not {accepted}")
    text = data[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or b"<html" in text[:256]:
        return RejectedImage("not_an_image", f"content is HTML, not {accepted}")
    if b"<svg" in text:
        return RejectedImage("not_an_image", f"content is SVG (vector XML), not {accepted}")
    return RejectedImage("not_an_image", f"content is no known image; stek accepts {accepted}")


# ---------------------------------------------------------------------- container walks


def _check_jpeg_container(data: bytes) -> None:
    end = _jpeg_end(data)
    trailing = data[end:]
    if not trailing.strip(b"\x00\xff") or trailing.startswith(b"\xff\xd8\xff"):
        return
    kind = "a ZIP archive" if trailing.startswith(b"PK") else f"{len(trailing)} bytes"
    raise RejectedImage(
        "trailing_data", f"{kind} follows the JPEG's end-of-image marker at offset {end}"
    )


def _jpeg_end(data: bytes) -> int:
    """Offset just past the end-of-image marker, walking segments and scans."""
    position, size = 2, len(data)
    while True:
        if position + 2 > size:
            raise _truncated("JPEG", position)
        if data[position] != 0xFF:
            raise RejectedImage("corrupt", f"JPEG: expected a marker at offset {position}")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker == 0xD9:  # end of image
            return position + 2
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            position += 2
            continue
        if position + 4 > size:
            raise _truncated("JPEG", position)
        (length,) = struct.unpack_from(">H", data, position + 2)
        position += 2 + length
        if position > size:
            raise _truncated("JPEG", size)
        if marker == 0xDA:  # start of scan: entropy-coded data runs to the next marker
            scan_end = _END_OF_SCAN.search(data, position)
            if scan_end is None:
                raise _truncated("JPEG", size)
            position = scan_end.start()


def _check_png_container(data: bytes) -> None:
    position, size, text_bytes = 8, len(data), 0
    while True:
        if position + 12 > size:
            raise _truncated("PNG", position)
        length, chunk_type = struct.unpack_from(">I4s", data, position)
        position += 12 + length
        if position > size:
            raise _truncated("PNG", size)
        if chunk_type in (b"tEXt", b"zTXt", b"iTXt"):
            text_bytes += length
            if text_bytes > MAX_TEXT_METADATA_BYTES:
                raise RejectedImage(
                    "oversized_metadata",
                    f"PNG text chunks hold over {MAX_TEXT_METADATA_BYTES} bytes",
                )
        if chunk_type == b"IEND":
            break
    if data[position:].strip(b"\x00"):
        raise RejectedImage("trailing_data", f"{size - position} bytes follow the PNG's IEND chunk")


def _check_webp_container(data: bytes) -> None:
    (riff_size,) = struct.unpack_from("<I", data, 4)
    expected = 8 + riff_size + (riff_size & 1)
    if len(data) < expected - (riff_size & 1):
        raise _truncated("WebP", len(data))
    if data[expected:].strip(b"\x00"):
        raise RejectedImage(
            "trailing_data", f"{len(data) - expected} bytes follow the WebP's RIFF container"
        )


def _no_container_check(data: bytes) -> None:
    # TIFF and BMP place their data by offsets; the decoder finds what is missing.
    return None


_CONTAINER_CHECKS: dict[str, Callable[[bytes], None]] = {
    "JPEG": _check_jpeg_container,
    "PNG": _check_png_container,
    "WEBP": _check_webp_container,
}


def _truncated(kind: str, offset: int) -> RejectedImage:
    return RejectedImage("truncated", f"{kind} ends early, at byte {offset}")


# ------------------------------------------------------------------------- decoding


def _open(data: bytes, image_format: str) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data), formats=[image_format])
    except Image.DecompressionBombError as error:
        raise RejectedImage("too_many_pixels", str(error)) from error
    except Exception as error:
        raise _decoder_refusal(image_format, error) from error


def _check_dimensions(image: Image.Image, max_pixels: int) -> tuple[int, int]:
    width, height = image.size
    if width * height > max_pixels:
        raise RejectedImage(
            "too_many_pixels",
            f"{width}x{height} is {width * height} pixels, over the limit of {max_pixels}",
        )
    if min(width, height) < MIN_SIDE:
        raise RejectedImage(
            "too_small", f"{width}x{height}: a side under {MIN_SIDE} pixels is no usable frame"
        )
    return width, height


def _decode_reduced(image: Image.Image) -> tuple[Image.Image, int]:
    """A small RGB or L picture, oriented as displayed, alpha over white; and the orientation."""
    if image.format in ("JPEG", "MPO"):
        # libjpeg's DCT scaling: decodes at 1/2, 1/4 or 1/8 size, still reading every byte.
        image.draft(image.mode, (THUMBNAIL_SIZE, THUMBNAIL_SIZE))
    try:
        image.load()
    except Image.DecompressionBombError as error:
        raise RejectedImage("too_many_pixels", str(error)) from error
    except Exception as error:
        raise _decoder_refusal(image.format or "image", error) from error

    # Read after decoding: PNG reads its EXIF at the end of the file, decoding on the way.
    orientation = _orientation(image)
    picture = _reduce(_normalised(image))
    if picture.mode == "RGBA":
        picture = _over_white(picture)
    if transpose := _ORIENTATIONS.get(orientation):
        picture = picture.transpose(transpose)
    return picture, orientation


def _decoder_refusal(image_format: str, error: Exception) -> RejectedImage:
    # Decoders raise many exception types for bad input (OSError, SyntaxError, ValueError,
    # struct.error, ...); all of them mean the bytes are not a readable image.
    message = str(error) or type(error).__name__
    if "MAX_TEXT" in message:
        return RejectedImage("oversized_metadata", f"{image_format}: {message}")
    if "truncated" in message or isinstance(error, EOFError):
        return RejectedImage("truncated", f"{image_format}: {message}")
    return RejectedImage("corrupt", f"{image_format} could not be decoded: {message}")


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_ORIENTATION_TAG, 1))
    except Exception:
        # A broken EXIF block does not make a broken picture; it is shown as stored.
        return 1


def _normalised(image: Image.Image) -> Image.Image:
    """L, RGB or RGBA with 8 bits per channel, whatever the stored mode."""
    mode = image.mode
    if mode in ("L", "RGB", "RGBA"):
        return image
    if mode.startswith("I") or mode == "F":
        return _wide_grey_to_l(image)
    if mode == "1":
        return image.convert("L")
    if mode in ("LA", "La", "PA", "RGBa") or (mode == "P" and "transparency" in image.info):
        return image.convert("RGBA")
    return image.convert("RGB")  # P, CMYK, YCbCr, LAB, HSV


def _wide_grey_to_l(image: Image.Image) -> Image.Image:
    # Pillow's own conversion clips 16-bit grey at 255 (a white picture); scale instead.
    pixels = np.asarray(image).astype(np.float64)
    if image.mode.startswith("I;16") or (pixels.min() >= 0 and pixels.max() <= 65535):
        scaled = pixels / 257.0
    else:
        finite = pixels[np.isfinite(pixels)]
        low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        scaled = (np.nan_to_num(pixels, nan=low) - low) * (255.0 / max(high - low, 1e-12))
    return Image.fromarray(np.clip(scaled, 0, 255).astype(np.uint8), "L")


def _reduce(picture: Image.Image) -> Image.Image:
    factor = min(picture.size) // THUMBNAIL_SIZE
    return picture.reduce(factor) if factor > 1 else picture


def _over_white(picture: Image.Image) -> Image.Image:
    background = Image.new("RGBA", picture.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, picture).convert("RGB")


def _thumbnail(picture: Image.Image) -> bytes:
    thumbnail = picture.copy()
    thumbnail.thumbnail((THUMBNAIL_SIZE, THUMBNAIL_SIZE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    thumbnail.save(buffer, "JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return buffer.getvalue()
