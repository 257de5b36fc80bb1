"""Standard Webhooks signatures: secrets (`whsec_` + base64) and the `webhook-signature` of a body.

The receiver checks `v1,<base64 HMAC-SHA256 of "id.timestamp.body">` with the same secret
(https://www.standardwebhooks.com); the tests check every signature with the reference verifier.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Any

from cms.errors import BadRequest

MIN_SECRET_CHARS = 16
_PREFIX = "whsec_"
_NOT_BASE64 = "a whsec_ secret must be base64 after the prefix"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return _PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret: the decoded bytes of `whsec_...`, else the text itself."""
    if secret.startswith(_PREFIX):
        try:
            return base64.b64decode(secret[len(_PREFIX) :], validate=True)
        except ValueError:
            raise BadRequest(_NOT_BASE64) from None
    return secret.encode()


def secret_problems(value: Any) -> list[str]:
    """Why `value` is not a usable secret (16+ characters, base64 after a `whsec_` prefix); empty when it is."""
    if not isinstance(value, str) or len(value) < MIN_SECRET_CHARS:
        return [f"must be at least {MIN_SECRET_CHARS} characters (or whsec_ + base64)"]
    try:
        secret_key(value)
    except BadRequest:
        return [_NOT_BASE64]
    return []


def secret_hint(secret: str) -> str:
    """The secret's first characters, to tell secrets apart: the prefix and 4 more, or 4 of a hand-made one."""
    # a short hand-made secret must not show most of itself
    return secret[: len(_PREFIX) + 4 if secret.startswith(_PREFIX) else 4] + "…"


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256 of "id.timestamp.body">` (Standard Webhooks)."""
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()
