"""Test images made with Pillow (and by hand where Pillow would need the memory the test guards)."""

from __future__ import annotations

import functools
import io
import struct
import zlib

from PIL import Image

RED = (255, 0, 0)
BLUE = (0, 0, 255)
GPS = {1: "N", 2: (52.0, 31.0, 12.0), 3: "E", 4: (13.0, 24.0, 0.0)}


def halves(size: tuple[int, int], mode: str = "RGB") -> Image.Image:
    """Left half red, right half blue: rotation is visible in the pixels."""
    im = Image.new("RGB", size, RED)
    im.paste(BLUE, (size[0] // 2, 0, size[0], size[1]))
    return im.convert(mode) if mode != "RGB" else im


def save(im: Image.Image, fmt: str, **params: object) -> bytes:
    out = io.BytesIO()
    im.save(out, fmt, **params)
    return out.getvalue()


def jpeg(size: tuple[int, int] = (1200, 800), *, orientation: int | None = None, gps: bool = False) -> bytes:
    exif = Image.Exif()
    if orientation:
        exif[0x0112] = orientation
    if gps:
        exif[0x8825] = GPS
    params: dict[str, object] = {"quality": 90}
    if orientation or gps:
        params["exif"] = exif.tobytes()
    return save(halves(size), "JPEG", **params)


def png_alpha(size: tuple[int, int] = (640, 480)) -> bytes:
    im = halves(size, "RGBA")
    im.paste((0, 255, 0, 0), (0, 0, size[0], size[1] // 2))  # top half fully transparent
    return save(im, "PNG")


def png16(size: tuple[int, int] = (512, 512)) -> bytes:
    """16-bit grey PNG with a full 0-65535 gradient."""
    grey = Image.linear_gradient("L").resize(size).convert("I").point(lambda v: v * 257).convert("I;16")
    return save(grey, "PNG")


def cmyk_jpeg(size: tuple[int, int] = (400, 300)) -> bytes:
    return save(Image.new("CMYK", size, (0, 255, 255, 0)), "JPEG", quality=95)  # red in CMYK


def webp(size: tuple[int, int] = (800, 600)) -> bytes:
    return save(halves(size), "WEBP", quality=90)


def avif(size: tuple[int, int] = (800, 600)) -> bytes:
    return save(halves(size), "AVIF", quality=80, speed=9)


def animated(fmt: str, size: tuple[int, int] = (64, 64)) -> bytes:
    frames = [Image.new("RGB", size, RED), Image.new("RGB", size, BLUE)]
    return save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)


def truncated_jpeg() -> bytes:
    data = save(Image.effect_noise((800, 600), 60).convert("RGB"), "JPEG", quality=90)
    return data[: len(data) // 2]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


@functools.cache
def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A valid 1-bit PNG of zeros: a few hundred kilobytes that decode to width x height pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


PHP = b"<?php system($_GET['c']); ?>\n"
SVG = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"><rect/></svg>\n'
FITS = b"SIMPLE  =                    T" + b" " * 50 + b"BITPIX  =                    8" + b" " * 2800
HTML = b"<!doctype html><html><body><script>alert(1)</script></body></html>\n"
