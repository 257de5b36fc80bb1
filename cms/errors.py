"""The one error family of the CMS.

Each error is raised where the problem is found and carries what its boundary needs;
`api/errors.py` maps them to HTTP statuses and `cli/common.py` to exit codes, nowhere else.

    CMSError
    ├── ConfigError(key, value)          cms.toml is missing a key or holds a bad value
    ├── ParseError(path, line)           a content file cannot be read (YAML, encoding, size, aliases)
    ├── BadRequest(details)              a request or query is malformed (unknown parameter, bad operator)
    │   └── BlockedTarget                a URL that may not be fetched (scheme, credentials, port, address)
    ├── Invalid(details)                 a document breaks its schema: {field: [messages]}
    ├── NotFound                         no document, type, term or key with that reference
    ├── Conflict(current_etag)           the file changed since it was read, or a slug is taken
    ├── PreconditionFailed(current_etag) If-Match did not match the file on disk
    ├── PreconditionRequired             the site requires If-Match on writes
    ├── Unauthorized(code)               missing, unknown, expired or disabled credentials
    ├── Forbidden                        the credentials lack a scope
    ├── PayloadTooLarge                  a body or file over its limit
    ├── UnsupportedMediaType             a body of the wrong content type
    ├── RateLimited(retry_after)         too many requests in the window
    ├── StateTooNew(path, version, newest) a .cms/ database has a schema version this cms cannot use
    │                                    (written by a newer cms): upgrade, or restore an older backup
    ├── FetchFailed                      a download gave no image (HTTP status, size, time, not an image)
    ├── ThemeError                       a template cannot be loaded or rendered (names file and line)
    └── OutputError                      two outputs of one build want the same path (a bug in the plan)

The mechanisms that raise the last four re-export them (`cms.net`, `cms.media.fetch`,
`cms.render.theme`, `cms.render.output`), so either import works.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class CMSError(Exception):
    """Base of every error the CMS raises on purpose."""

    code = "INTERNAL_ERROR"

    def __init__(self, message: str, *, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class ConfigError(CMSError):
    code = "CONFIG_ERROR"

    def __init__(self, message: str, *, key: str = "", value: Any = None) -> None:
        super().__init__(message, details={"key": key} if key else None)
        self.key = key
        self.value = value


class ParseError(CMSError):
    """A content file that cannot be loaded; `line` is 1-based in the whole file."""

    code = "PARSE_ERROR"

    def __init__(self, path: Path | str, line: int, message: str) -> None:
        super().__init__(message, details={"path": str(path), "line": line})
        self.path = Path(path)
        self.line = line

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class BadRequest(CMSError):
    code = "BAD_REQUEST"


class Invalid(CMSError):
    """Field-level validation failures: details is {field: [message, ...]}."""

    code = "VALIDATION_ERROR"

    def __init__(self, details: dict[str, list[str]], message: str = "") -> None:
        fields = ", ".join(sorted(details))
        super().__init__(message or f"invalid field(s): {fields}", details=details)


class BlockedTarget(BadRequest):
    """A URL that may not be fetched (scheme, credentials, port, or a private address); see `cms.net`."""

    code = "BLOCKED_TARGET"


class NotFound(CMSError):
    code = "NOT_FOUND"


class Conflict(CMSError):
    code = "CONFLICT"

    def __init__(self, message: str, *, current_etag: str | None = None, details: Any = None) -> None:
        super().__init__(message, details=details)
        self.current_etag = current_etag


class PreconditionFailed(CMSError):
    code = "PRECONDITION_FAILED"

    def __init__(self, message: str, *, current_etag: str | None = None) -> None:
        super().__init__(message, details={"current_etag": current_etag})
        self.current_etag = current_etag


class PreconditionRequired(CMSError):
    code = "PRECONDITION_REQUIRED"


class Unauthorized(CMSError):
    code = "UNAUTHORIZED"

    def __init__(self, message: str, *, code: str = "UNAUTHORIZED") -> None:
        super().__init__(message)
        self.code = code


class Forbidden(CMSError):
    code = "FORBIDDEN"


class PayloadTooLarge(CMSError):
    code = "PAYLOAD_TOO_LARGE"


class UnsupportedMediaType(CMSError):
    code = "UNSUPPORTED_MEDIA_TYPE"


class RateLimited(CMSError):
    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int, limit: int = 0) -> None:
        super().__init__(message, details={"retry_after": retry_after})
        self.retry_after = retry_after
        self.limit = limit


class StateTooNew(CMSError):
    """A `.cms/` database (or one in a backup) whose `user_version` is past the newest this cms knows.

    Raised when the database is opened, before anything is read or written: running old code on a
    newer schema could misread or damage what cannot be rebuilt (keys, webhook secrets)."""

    code = "STATE_TOO_NEW"

    def __init__(self, message: str, *, path: Path | str, version: int, newest: int) -> None:
        super().__init__(message)
        self.path = Path(path)
        self.version = version
        self.newest = newest


class FetchFailed(CMSError):
    """A download that did not give an image (HTTP status, size, time, not an image)."""

    code = "FETCH_FAILED"


class ThemeError(CMSError):
    """A template that cannot be loaded or rendered; the message names the file and line."""

    code = "THEME_ERROR"


class OutputError(CMSError):
    """Two outputs of one build want the same path: a bug in the build plan, never in content."""

    code = "OUTPUT_ERROR"
