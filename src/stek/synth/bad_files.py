"""Files an ingest must refuse or normalise, each named after what it is. TEST DATA helpers.

Some are not images at all (empty, random bytes, HTML/SVG/PostScript/ZIP named .jpg), some are
broken or hostile images (truncated, ZIP smuggled after the JPEG, huge or bomb-like text chunks,
absurd sizes), and some are valid but awkward images that a careless pipeline mishandles (CMYK,
16-bit, palette with transparency, EXIF-rotated). The names say which property each file has;
the tests check that it really has it.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image

from stek.synth.cutting import generate_cutting
from stek.synth.duplicates import encode_jpeg, encode_png

BAD_FILE_STREAM = 6
ZIP_TIME = (2026, 1, 1, 0, 0, 0)  # fixed, so the archive has the same bytes every time
EXIF_ORIENTATION = 0x0112
BOMB_SIDE = 30_000  # 900 megapixels: ~2.7 GB as RGB, far beyond any sane limit


def bad_files(seed: int, *, text_chunk_mb: int = 20) -> dict[str, bytes]:
    """Every kind of bad or awkward upload, by file name. Takes well under a second.

    `text_chunk_mb` sizes the tEXt chunk of `huge-text-chunk.png` (the file is that large).
    """
    rng = np.random.default_rng([seed, BAD_FILE_STREAM])
    picture = generate_cutting(seed, size=64).image
    jpeg = encode_jpeg(picture)
    archive = _zip_archive()
    return {
        "empty.jpg": b"",
        "random-bytes.jpg": _random_bytes(rng),
        "html-page.jpg": HTML,
        "svg-drawing.jpg": SVG,
        "postscript.jpg": POSTSCRIPT,
        "zip-archive.jpg": archive,
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "jpeg-with-zip-appended.jpg": jpeg + archive,
        "huge-text-chunk.png": _with_chunk(encode_png(picture), _text_chunk(text_chunk_mb)),
        "ztxt-bomb.png": _with_chunk(encode_png(picture), _ztxt_bomb(text_chunk_mb)),
        "1x1.png": encode_png(Image.new("RGB", (1, 1), (90, 140, 60))),
        "1x12000.png": encode_png(picture.resize((1, 12_000))),
        "cmyk.jpg": _cmyk_jpeg(picture),
        "16-bit.png": _sixteen_bit_png(picture),
        "palette-transparent.png": _palette_png(picture),
        "exif-rotated.jpg": _exif_rotated_jpeg(picture.resize((64, 48))),
    }


def decompression_bomb_png() -> bytes:
    """A valid 30000x30000 greyscale PNG of under 1 MB that inflates to 900 MB of pixels.

    Built in well under 2 seconds: a deflate block of zeros, flushed so that it stands alone, is
    repeated instead of compressing 900 MB, and the checksum of all-zero data is computed
    directly.
    """
    raw_size = BOMB_SIDE * (BOMB_SIDE + 1)  # each row: filter byte 0 then all-black pixels
    piece = 1 << 20
    compressor = zlib.compressobj(level=9)
    zeros = bytes(piece)
    first = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    repeated = compressor.compress(zeros) + compressor.flush(zlib.Z_FULL_FLUSH)
    pieces, rest = divmod(raw_size, piece)
    tail = compressor.compress(bytes(rest)) + compressor.flush(zlib.Z_FINISH)
    # Adler-32 of n zero bytes is A = 1, B = n mod 65521; replace the trailer that counted
    # only the bytes this compressor really saw.
    checksum = struct.pack(">I", ((raw_size % 65521) << 16) | 1)
    stream = first + repeated * (pieces - 1) + tail[:-4] + checksum

    header = struct.pack(">IIBBBBB", BOMB_SIDE, BOMB_SIDE, 8, 0, 0, 0, 0)
    return PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", stream) + _chunk(b"IEND", b"")


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HTML = (
    b"<!DOCTYPE html>\n<html><head><title>Tray 17</title></head>\n"
    b'<body><img src="tray-17.jpg"><p>synthetic test file, not an image</p></body></html>\n'
)
SVG = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64">'
    b'<script>alert("synthetic test file")</script>'
    b'<ellipse cx="32" cy="32" rx="20" ry="8" fill="green"/></svg>\n'
)
POSTSCRIPT = (
    b"%!PS-Adobe-3.0\n%%Title: synthetic test file\n%%BoundingBox: 0 0 64 64\n"
    b"newpath 10 10 moveto 54 54 lineto stroke\nshowpage\n%%EOF\n"
)


def _random_bytes(rng: np.random.Generator) -> bytes:
    noise = bytearray(rng.bytes(4096))
    noise[0] = 0x00  # never start by chance with a JPEG or PNG signature byte
    return bytes(noise)


def _zip_archive() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        entry = zipfile.ZipInfo("readme.txt", date_time=ZIP_TIME)
        archive.writestr(entry, b"synthetic test file: a ZIP archive named .jpg\n")
    return buffer.getvalue()


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zlib.crc32(payload, zlib.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


def _with_chunk(png: bytes, chunk: bytes) -> bytes:
    """The PNG with `chunk` inserted right after IHDR, so a reader meets it when opening."""
    after_header = len(PNG_SIGNATURE) + 8 + 13 + 4  # signature, IHDR length+type, data, CRC
    return png[:after_header] + chunk + png[after_header:]


def _text_chunk(megabytes: int) -> bytes:
    line = b"synthetic test data: a PNG text chunk far larger than any real comment.\n"
    text = (line * (megabytes * 1_000_000 // len(line) + 1))[: megabytes * 1_000_000]
    return _chunk(b"tEXt", b"Comment\x00" + text)


def _ztxt_bomb(megabytes: int) -> bytes:
    """A compressed text chunk of a few kilobytes that inflates to `megabytes` MB."""
    compressed = zlib.compress(bytes(megabytes * 1_000_000), 9)
    return _chunk(b"zTXt", b"Comment\x00\x00" + compressed)


def _cmyk_jpeg(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.convert("CMYK").save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _sixteen_bit_png(picture: Image.Image) -> bytes:
    grey = np.asarray(picture.convert("L"), dtype=np.uint16) * 257  # full 0..65535 range
    return encode_png(Image.fromarray(grey))


def _palette_png(picture: Image.Image) -> bytes:
    indexed = picture.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    buffer = io.BytesIO()
    indexed.save(buffer, format="PNG", transparency=0)
    return buffer.getvalue()


def _exif_rotated_jpeg(picture: Image.Image) -> bytes:
    """Stored landscape with orientation 6: viewers show it turned 90 degrees clockwise."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = 6
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()
