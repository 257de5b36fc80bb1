"""Conversions in a bounded pool of worker processes: at most 2 processes, 2 images at a time, a deadline each.

Processes, not threads: parts of Pillow's resampling and of the AVIF/WebP encoders hold the GIL
for tens of milliseconds on a 12-megapixel image, which would stall the API's event loop; and a
codec crashing on a hostile file takes down a worker, not the server. The header checks (type,
pixel count, animation, `verify()`) run here first, so a decompression bomb is refused without
reaching the pool. Each image is two jobs that both workers share: the full-size AVIF (the
longest), and everything else. The encoded bytes come back in memory; the caller writes them
all or nothing.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as wait_all
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from cms import workers
from cms.errors import CMSError, Invalid, RateLimited, UnsupportedMediaType

from . import convert
from .convert import Kind, Settings

CONVERT_TIMEOUT_S = 30.0  # per image, from the moment its conversion starts
ADMISSION_WAIT_S = 120.0  # how long an image may wait for its turn before 429
POOL_WORKERS = min(2, os.cpu_count() or 1)


@dataclass
class Converted:
    """Encoded outputs of one image, all in memory until they are written together."""

    width: int
    height: int
    derivatives: dict[str, bytes]  # format -> bytes
    variants: dict[int, dict[str, bytes]]  # width -> format -> bytes
    original: bytes  # the bytes to store as the original (stripped when configured)


class Converter:
    """Check images here, convert them in worker processes; one per library (close() ends the workers)."""

    def __init__(self, settings: Settings, *, strip_original: bool = False, timeout: float = CONVERT_TIMEOUT_S) -> None:
        self.settings = settings
        self.strip_original = strip_original
        self.timeout = timeout
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        # At most POOL_WORKERS images convert at once; the others wait here, so an image's
        # deadline never includes the time other images took.
        self._slots = threading.BoundedSemaphore(POOL_WORKERS)

    def start(self) -> None:
        """Start the worker processes now, without waiting for them (else the first upload waits)."""
        pool = self._executor()
        for _ in range(POOL_WORKERS):
            pool.submit(_ready)

    def close(self) -> None:
        """End the worker processes (conversions under way finish first)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                # From the fork server (a server has threads: forking it directly can deadlock), and
                # dying with this process even when it is killed (kill -9 skips its shutdown).
                self._pool = workers.pool(POOL_WORKERS, preload=["cms.media.convert"])
            return self._pool

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def convert(self, data: bytes, kind: Kind) -> Converted:
        """Every derivative of one image, within the deadline (422 past it; 429 if no turn came)."""
        convert.check_header(data, kind, self.settings.max_pixels)  # bombs and animations stop here
        if not self._slots.acquire(timeout=ADMISSION_WAIT_S):
            raise RateLimited("the server is busy converting other images; try again shortly", retry_after=30)
        try:
            return self._convert(data, kind, time.monotonic() + self.timeout)
        finally:
            self._slots.release()

    def _convert(self, data: bytes, kind: Kind, deadline: float) -> Converted:
        pool = self._executor()
        try:
            avif = pool.submit(_job_full_avif, data, kind, self.settings)
            rest = pool.submit(_job_rest, data, kind, self.settings, self.strip_original)
            _, pending = wait_all([avif, rest], timeout=max(0.0, deadline - time.monotonic()))
            if pending:
                for future in pending:
                    future.cancel()  # one already running finishes in its worker; its result is dropped
                message = f"converting the image took longer than {self.timeout:g} s"
                raise Invalid({"image": [message]}, message)
            full_avif = _result(avif)
            width, height, full_webp, variants, original = _result(rest)
        except BrokenProcessPool:
            self._reset(pool)
            message = "the image could not be converted (the converter stopped on it)"
            raise Invalid({"image": [message]}, message) from None
        return Converted(
            width=width,
            height=height,
            derivatives={"avif": full_avif, "webp": full_webp},
            variants=variants,
            original=original if original is not None else data,
        )


def _result(future: Future[Any]) -> Any:
    """A job's value; the error it reported raised again here (CMS errors do not pickle their details)."""
    status, *value = future.result()
    if status == "ok":
        return value[0]
    kind, message, details = value
    if kind == "unsupported":
        raise UnsupportedMediaType(message)
    raise Invalid(details if isinstance(details, dict) else {"image": [message]}, message)


# -- run in the worker processes -------------------------------------------------------------------


def _ready() -> None:
    """A no-op: makes the pool start a worker."""


def _guarded(job: Any) -> Any:
    try:
        return ("ok", job())
    except UnsupportedMediaType as exc:
        return ("error", "unsupported", exc.message, exc.details)
    except CMSError as exc:
        return ("error", "invalid", exc.message, exc.details)


def _job_full_avif(data: bytes, kind: Kind, settings: Settings) -> Any:
    def job() -> bytes:
        im, icc = convert.upright(convert.decode(data, kind, settings.max_pixels))
        return convert.encode(im, "avif", settings, icc)

    return _guarded(job)


def _job_rest(data: bytes, kind: Kind, settings: Settings, strip: bool) -> Any:
    def job() -> tuple[int, int, bytes, dict[int, dict[str, bytes]], bytes | None]:
        im, icc = convert.upright(convert.decode(data, kind, settings.max_pixels))
        webp = convert.encode(im, "webp", settings, icc)
        variants = {}
        for width in convert.plan_widths(im.width, settings.widths):
            small = convert.resized(im, width)
            variants[width] = {fmt: convert.encode(small, fmt, settings, icc) for fmt in ("avif", "webp")}
        original = convert.strip_metadata(data, kind, convert.open_image(data, kind)) if strip else None
        return im.width, im.height, webp, variants, original

    return _guarded(job)
