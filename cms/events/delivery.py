"""Sending webhook deliveries: one signed POST to a vetted, pinned address, and the `Deliverer` threads.

The target is vetted again before every attempt (DNS may have changed, or the site's [network]
rules), and the request goes to the address that was vetted (`Target.pinned_url`), never to a
second lookup of the name. No redirect is followed and no proxy from the environment is used.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx

from cms import __version__
from cms.clock import utc_now
from cms.config import Site
from cms.events.outbox import Attempt
from cms.events.signing import sign
from cms.events.subscriptions import Webhook
from cms.net import BlockedTarget, Target

log = logging.getLogger("cms.webhooks")

_EXCERPT = 1024  # bytes of a receiver's answer kept in the delivery log


def attempt_delivery(
    row: Any, hook: Webhook, client: httpx.Client, *, vet: Callable[[str], Target], timeout: float
) -> Attempt:
    """POST one outbox row's stored body to its subscription, signed now; what came of it."""
    # The receiver checks the timestamp against its own clock, so it is the real time, not a service's
    # (a test's clock moves the outbox schedule, not the receivers').
    timestamp = int(time.time())
    started = time.perf_counter()
    status: int | None = None
    excerpt = error = None
    retry_after: float | None = None
    try:
        target = vet(hook.url)
        headers = {
            "content-type": "application/json",
            "user-agent": f"cms-webhooks/{__version__}",
            "webhook-id": row["event_id"],
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(hook.secret, row["event_id"], timestamp, bytes(row["body"])),
            "host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        }
        extensions = {"sni_hostname": target.host} if target.url.startswith("https") else {}
        with client.stream(
            "POST", target.pinned_url, content=bytes(row["body"]), headers=headers, extensions=extensions
        ) as response:
            status = response.status_code
            retry_after = _retry_after(response.headers.get("retry-after"))
            chunk = b""
            for part in response.iter_bytes():
                chunk += part
                # httpx's timeout is per read: a receiver dripping its answer is cut off here
                if len(chunk) >= _EXCERPT or time.perf_counter() - started > timeout:
                    break
            excerpt = chunk[:_EXCERPT].decode("utf-8", "replace")
    except BlockedTarget as exc:
        error = f"blocked: {exc.message}"
    except httpx.TimeoutException:
        error = f"timed out after {timeout:g} s"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}"[:300]
    latency_ms = (time.perf_counter() - started) * 1000
    return Attempt(status, excerpt, error, latency_ms, retry_after)


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds, or an HTTP date on the receiver's clock); None if unreadable."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, (parsedate_to_datetime(value) - utc_now()).total_seconds())
    except (TypeError, ValueError):
        return None


class DeliveryQueue(Protocol):
    """What a `Deliverer` drives: the `Webhooks` service of events/webhooks.py (which imports this module)."""

    site: Site
    wake: threading.Event  # set when a row may be due

    def claim(self, limit: int) -> list[Any]: ...

    def send(self, row: Any, client: httpx.Client) -> None: ...

    def sweep(self) -> None: ...


class Deliverer:
    """Background delivery: a loop that claims due rows and sends them on a small thread pool."""

    def __init__(self, webhooks: DeliveryQueue, *, transport: httpx.BaseTransport | None = None) -> None:
        self.webhooks = webhooks
        self.workers = max(1, webhooks.site.delivery.workers)
        timeout = webhooks.site.delivery.timeout
        self.client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(3.0, timeout)),
            follow_redirects=False,
            trust_env=False,
            transport=transport,
            verify=True,
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="cms-webhook")
        self._busy = 0
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="cms-webhooks", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.webhooks.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.client.close()

    def _run(self) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                sent = self.step()
                if time.monotonic() - last_sweep > 3600:
                    self.webhooks.sweep()
                    last_sweep = time.monotonic()
            except Exception:  # noqa: BLE001 - the delivery loop must outlive any one bad row
                log.exception("webhook delivery loop error")
                sent = 0
            if not sent:
                self.webhooks.wake.wait(0.25)
                self.webhooks.wake.clear()

    def step(self) -> int:
        """Claim and start as many due deliveries as there are free workers; how many started."""
        with self._lock:
            free = self.workers - self._busy
        if free <= 0:
            time.sleep(0.005)
            return 0
        rows = self.webhooks.claim(free)
        for row in rows:
            with self._lock:
                self._busy += 1
            self._pool.submit(self._send, row)
        return len(rows)

    def _send(self, row: Any) -> None:
        try:
            self.webhooks.send(row, self.client)
        except Exception:  # noqa: BLE001
            log.exception("webhook delivery %s failed unexpectedly", row["id"])
        finally:
            with self._lock:
                self._busy -= 1
            self.webhooks.wake.set()

    def flush(self, timeout: float = 30.0) -> int:
        """Send everything due now (for `cms webhooks flush` and `cms build`); how many attempts started."""
        deadline = time.monotonic() + timeout
        started = 0
        while time.monotonic() < deadline:
            # Idle is read before stepping: a step that starts nothing because every slot is busy
            # must not end the flush when those deliveries finish just after it (the row it could
            # not start would be left pending).
            with self._lock:
                idle = self._busy == 0
            count = self.step()
            started += count
            if not count and idle:
                break
            if not count:
                time.sleep(0.01)
        return started
