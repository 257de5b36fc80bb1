"""API keys: prefixed tokens shown once, stored as keyed hashes, with scopes and expiry. No HTTP here.

Token format: `cms_<key id>_<secret>`. The 12-character key id is public (lookup, display, logs);
the secret is 256 random bits and only its keyed blake2b digest is stored (a fast keyed hash is
right for high-entropy random secrets). An unknown id and a wrong secret take the same path and
produce the same error, and digests are compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cms.clock import Clock, iso_z, iso_z_or_none, utc_now
from cms.errors import BadRequest, Forbidden, NotFound, Unauthorized
from cms.state import State

PREFIX = "cms_"
SCOPES = ("read", "write", "delete", "admin")
# What each scope lets a key do, beyond itself: write and delete include read; admin includes all.
IMPLIES = {"read": {"read"}, "write": {"read", "write"}, "delete": {"read", "delete"}, "admin": set(SCOPES)}
_ID_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"
_LAST_USED_EVERY_S = 60.0
# A verified token is trusted for a second without another database read: requests stay cheap, and a
# key disabled, rotated or revoked by another process stops working within that second (at once here).
_VERIFIED_TTL_S = 1.0  # write last_used_at at most once a minute per key: reads must not fsync


@dataclass(frozen=True)
class ApiKey:
    """A stored key as the API shows it: never the secret."""

    id: str
    name: str
    scopes: frozenset[str]
    last4: str
    created_at: datetime
    last_used_at: datetime | None = None
    expires_at: datetime | None = None
    enabled: bool = True
    types: frozenset[str] | None = None  # None: every content type
    has_secret: bool = False
    granted: frozenset[str] = field(default=frozenset(), compare=False)

    def can(self, scope: str) -> bool:
        return scope in self.granted

    def require(self, scope: str, type_name: str | None = None) -> None:
        """Raise Forbidden unless the key holds `scope` (and may touch `type_name`)."""
        if scope not in self.granted:
            raise Forbidden(f"this API key lacks the {scope!r} scope")
        if type_name is not None and self.types is not None and type_name not in self.types:
            raise Forbidden(f"this API key may not access content type {type_name!r}")

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scopes": sorted(self.scopes),
            "types": sorted(self.types) if self.types is not None else None,
            "last4": self.last4,
            "has_secret": self.has_secret,
            "enabled": self.enabled,
            "created_at": iso_z(self.created_at),
            "last_used_at": iso_z_or_none(self.last_used_at),
            "expires_at": iso_z_or_none(self.expires_at),
        }


@dataclass(frozen=True)
class IssuedKey:
    """A key right after creation or rotation: the only time the token (and secret) exist in clear."""

    key: ApiKey
    token: str
    secret: str | None = None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    chosen = frozenset(s.strip() for s in scopes if s.strip())
    unknown = sorted(chosen - set(SCOPES))
    if unknown or not chosen:
        raise BadRequest(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")
    return chosen


class Keys:
    """Create, verify, list and change API keys stored in the site's state database."""

    def __init__(self, state: State, clock: Clock = utc_now) -> None:
        self.state = state
        self.clock = clock
        self._pepper = state.secret("key-pepper")
        self._last_used: dict[str, float] = {}
        self._verified: dict[bytes, tuple[ApiKey, float]] = {}
        self._lock = threading.Lock()

    def _digest(self, secret: str) -> bytes:
        return hashlib.blake2b(secret.encode(), key=self._pepper, digest_size=32).digest()

    def create(
        self,
        name: str,
        scopes: Iterable[str],
        *,
        expires_at: datetime | None = None,
        with_secret: bool = False,
        types: Iterable[str] | None = None,
    ) -> IssuedKey:
        """Issue a key; the token (and secret) are returned once and never stored."""
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise BadRequest("name must be 1-100 characters")
        chosen = check_scopes(scopes)
        if expires_at is not None and expires_at.tzinfo is None:
            raise BadRequest("expires_at needs a timezone")
        key_id = "".join(secrets.choice(_ID_ALPHABET) for _ in range(12))
        body = secrets.token_urlsafe(32)
        token = f"{PREFIX}{key_id}_{body}"
        secret = f"cmss_{secrets.token_urlsafe(32)}" if with_secret else None
        now = self.clock().replace(microsecond=0)
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO api_keys (id, name, digest, secret_digest, last4, scopes, types, created_at, "
                "expires_at, enabled) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                (
                    key_id,
                    name.strip(),
                    self._digest(body),
                    self._digest(secret) if secret else None,
                    token[-4:],
                    " ".join(sorted(chosen)),
                    " ".join(sorted(types)) if types is not None else None,
                    now.isoformat(),
                    expires_at.astimezone(UTC).isoformat() if expires_at else None,
                ),
            )
        return IssuedKey(self.get(key_id), token, secret)

    def _row_to_key(self, row: Any) -> ApiKey:
        scopes = frozenset(row["scopes"].split())
        granted = frozenset(set().union(*(IMPLIES[s] for s in scopes if s in IMPLIES)))
        return ApiKey(
            id=row["id"],
            name=row["name"],
            scopes=scopes,
            last4=row["last4"],
            created_at=datetime.fromisoformat(row["created_at"]),
            last_used_at=_parse_time(row["last_used_at"]),
            expires_at=_parse_time(row["expires_at"]),
            enabled=bool(row["enabled"]),
            types=frozenset(row["types"].split()) if row["types"] is not None else None,
            has_secret=row["secret_digest"] is not None,
            granted=granted,
        )

    def get(self, key_id: str) -> ApiKey:
        rows = self.state.query("SELECT * FROM api_keys WHERE id = ?", (key_id,))
        if not rows:
            raise NotFound(f"no API key {key_id!r}")
        return self._row_to_key(rows[0])

    def list(self) -> list[ApiKey]:
        return [self._row_to_key(r) for r in self.state.query("SELECT * FROM api_keys ORDER BY created_at, id")]

    def verify(self, token: str, secret: str | None = None) -> ApiKey:
        """The key a token belongs to; Unauthorized (same message for unknown and wrong) otherwise."""
        invalid = Unauthorized("invalid API key")
        if not token.startswith(PREFIX) or len(token) > 200:
            raise invalid
        key_id, sep, body = token[len(PREFIX) :].partition("_")
        known = self.recently_verified(token, secret)
        if known is not None:
            return known
        rows = self.state.query("SELECT * FROM api_keys WHERE id = ?", (key_id,)) if sep else []
        # Compare against a dummy digest when the id is unknown, so both paths cost the same.
        stored = bytes(rows[0]["digest"]) if rows else b"\0" * 32
        ok = hmac.compare_digest(self._digest(body), stored) and bool(rows)
        if rows and rows[0]["secret_digest"] is not None:
            given = self._digest(secret or "")
            ok = hmac.compare_digest(given, bytes(rows[0]["secret_digest"])) and ok
        if not ok:
            raise invalid
        key = self._row_to_key(rows[0])
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[self._digest(f"{token}\0{secret or ''}")] = (key, time.monotonic())
        return self._usable(key)

    def recently_verified(self, token: str, secret: str | None = None) -> ApiKey | None:
        """The key of a token this process verified in the last second (no database read), else None;
        Unauthorized when that key has since been disabled or has expired."""
        cached = self._verified.get(self._digest(f"{token}\0{secret or ''}"))
        if cached is None or time.monotonic() - cached[1] >= _VERIFIED_TTL_S:
            return None
        return self._usable(cached[0])

    def _usable(self, key: ApiKey) -> ApiKey:
        if not key.enabled:
            raise Unauthorized("this API key is disabled", code="KEY_DISABLED")
        if key.expires_at is not None and key.expires_at <= self.clock():
            raise Unauthorized("this API key has expired", code="KEY_EXPIRED")
        self._touch(key.id)
        return key

    def _touch(self, key_id: str) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last_used.get(key_id, -1e9) < _LAST_USED_EVERY_S:
                return
            self._last_used[key_id] = now
        with self.state.transaction() as db:
            db.execute(
                "UPDATE api_keys SET last_used_at = ? WHERE id = ?",
                (self.clock().replace(microsecond=0).isoformat(), key_id),
            )

    def set_enabled(self, key_id: str, enabled: bool) -> ApiKey:
        self._verified.clear()  # a change here takes effect at once in this process
        self.get(key_id)
        with self.state.transaction() as db:
            db.execute("UPDATE api_keys SET enabled = ? WHERE id = ?", (int(enabled), key_id))
        self._verified.clear()  # and again after: a verify racing the change must not keep the old state
        return self.get(key_id)

    def rotate(self, key_id: str) -> IssuedKey:
        """A new token for the same key id and settings; the old token stops working at once."""
        self._verified.clear()  # a change here takes effect at once in this process
        key = self.get(key_id)
        body = secrets.token_urlsafe(32)
        token = f"{PREFIX}{key_id}_{body}"
        secret = f"cmss_{secrets.token_urlsafe(32)}" if key.has_secret else None
        with self.state.transaction() as db:
            db.execute(
                "UPDATE api_keys SET digest = ?, secret_digest = ?, last4 = ? WHERE id = ?",
                (self._digest(body), self._digest(secret) if secret else None, token[-4:], key_id),
            )
        self._verified.clear()
        return IssuedKey(self.get(key_id), token, secret)

    def revoke(self, key_id: str) -> None:
        self._verified.clear()  # a change here takes effect at once in this process
        self.get(key_id)
        with self.state.transaction() as db:
            db.execute("DELETE FROM api_keys WHERE id = ?", (key_id,))
        self._verified.clear()
