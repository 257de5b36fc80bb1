"""Webhook subscriptions: what one is (`WebhookSettings`, checked in one place), which events it wants,
and the `webhooks` table: create, update, delete, and the sync from the `[[webhooks]]` of cms.toml.

The API body, a PATCH and a cms.toml table are the same settings under the same names, so
`WebhookSettings` (a pydantic model) is their one declaration: `parse` checks them for the service,
the API validates its bodies with it (`WebhookChanges`, derived from it, for a PATCH) and publishes
its JSON Schema. `WEBHOOK_KEYS` are the names it accepts (also seed 004's `contentTypes`).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo

from cms.clock import Clock, iso_z, utc_now
from cms.config import Site
from cms.content.limits import MAX_LIST_ITEMS, MAX_TITLE_CHARS, list_problems, text_problems
from cms.errors import ConfigError, Conflict, Invalid, NotFound
from cms.events.bus import EVENTS, Event
from cms.events.outbox import cancel_deliveries
from cms.events.signing import MIN_SECRET_CHARS, new_secret, secret_hint, secret_problems
from cms.net import MAX_URL_CHARS, BlockedTarget
from cms.state import State

# Seed 004 names, accepted in subscriptions: they mean the same action on any document.
EVENT_ALIASES = {
    "entry.create": "*.created",
    "entry.update": "*.updated",
    "entry.delete": "*.deleted",
    "entry.publish": "*.published",
    "entry.unpublish": "*.unpublished",
    "media.create": "media.uploaded",
    "media.delete": "media.deleted",
}
KNOWN_EVENTS = tuple(EVENTS)  # the names of `cms.events.bus.EVENTS`, where events are declared


def matches(patterns: Iterable[str], name: str) -> bool:
    """Whether an event name is wanted by any of the patterns: a name, `*`, `post.*`, `*.published`, an alias."""
    for raw in patterns:
        pattern = EVENT_ALIASES.get(raw, raw)
        if pattern in ("*", name):
            return True
        if pattern.endswith(".*") and name.startswith(pattern[:-1]):
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]):
            return True
    return False


def _known_pattern(pattern: str) -> bool:
    return (
        pattern == "*"
        or pattern.endswith(".*")
        or pattern.startswith("*.")
        or pattern in KNOWN_EVENTS
        or (pattern in EVENT_ALIASES)
    )


# An event name or pattern, as the published schema says it (the check is `_events_problems`).
EventPattern = Annotated[
    str,
    Field(
        json_schema_extra={
            "anyOf": [
                {"enum": ["*", *KNOWN_EVENTS, *EVENT_ALIASES]},
                {"pattern": "\\.\\*$"},
                {"pattern": "^\\*\\."},
            ]
        }
    ),
]


def _published(schema: dict[str, Any], model: type[BaseModel]) -> None:
    """The settings' JSON Schema as published: seed 004's spelling too; a PATCH's with every setting optional."""
    props = schema["properties"]
    props["contentTypes"] = {**props["content_types"], "description": "Same as content_types"}
    if getattr(model, "partial", False):  # a setting left out keeps its value: no default, none required
        schema["required"] = []
        for prop in props.values():
            prop.pop("default", None)


class WebhookSettings(BaseModel):
    """A subscription's settings: an API body, or a `[[webhooks]]` table of cms.toml."""

    # The one declaration of these settings (see the module docstring). Each field's check is the
    # project's own (a ValueError with our message), so every problem is collected in one pass.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, json_schema_extra=_published)
    partial: ClassVar[bool] = False  # True for `WebhookChanges`: every setting may be left out

    name: str = Field(min_length=1, max_length=MAX_TITLE_CHARS, description="A label for people")
    url: str = Field(
        max_length=MAX_URL_CHARS,
        description="http(s); it must resolve to public addresses on port 80 or 443 (SSRF guard)",
        json_schema_extra={"format": "uri"},
    )
    events: tuple[EventPattern, ...] = Field(
        ("*",),
        min_length=1,
        max_length=MAX_LIST_ITEMS,
        description="Event names, `*`, `post.*`, `*.published` or a seed 004 alias such as `entry.publish`",
    )
    content_types: tuple[str, ...] | None = Field(
        None, max_length=MAX_LIST_ITEMS, description="Only document events of these types (null: every type)"
    )
    secret: str | None = Field(
        None,
        min_length=MIN_SECRET_CHARS,
        description="Signing secret (whsec_ + base64, or 16+ characters); generated when absent",
    )
    enabled: bool = True

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, values: Any) -> Any:
        return _canonical(values) if isinstance(values, Mapping) else values

    @field_validator("name", mode="before")
    @classmethod
    def _check_name(cls, value: Any) -> Any:
        _refuse(_name_problems(value))
        return value.strip()

    @field_validator("url", mode="before")
    @classmethod
    def _check_url(cls, value: Any, info: ValidationInfo) -> Any:
        vet = (info.context or {}).get("vet")  # the site's [network] rules: only the service has them
        _refuse(["is required"] if not isinstance(value, str) else _url_problems(value, vet) if vet else [])
        return value

    @field_validator("events", mode="before")
    @classmethod
    def _check_events(cls, value: Any) -> Any:
        _refuse(_events_problems(value))
        return tuple(value)

    @field_validator("content_types", mode="before")
    @classmethod
    def _check_content_types(cls, value: Any) -> Any:
        if value is None:
            return None
        _refuse(_content_types_problems(value))
        return tuple(value)

    @field_validator("secret", mode="before")
    @classmethod
    def _check_secret(cls, value: Any, info: ValidationInfo) -> Any:
        # A missing secret is generated at creation; once there is one, it can only be replaced.
        if value is not None or (info.context or {}).get("replacing"):
            _refuse(secret_problems(value))
        return value

    @field_validator("enabled", mode="before")
    @classmethod
    def _check_enabled(cls, value: Any) -> Any:
        _refuse([] if isinstance(value, bool) else ["must be true or false"])
        return value

    @classmethod
    def parse(
        cls, values: Mapping[str, Any], *, vet: Callable[[str], object], current: WebhookSettings | None = None
    ) -> WebhookSettings:
        """The settings `values` give, over `current` when given (a PATCH), with every problem in one `Invalid`.

        A PATCH is checked as the whole result, so a URL kept from before is vetted again under the
        rules of today. `content_types` wins over `contentTypes` when both are given.
        """
        merged = {**current.model_dump(), **_canonical(values)} if current is not None else values
        try:
            return cls.model_validate(merged, context={"vet": vet, "replacing": current is not None})
        except ValidationError as exc:
            raise Invalid(_details(exc)) from None


# A PATCH body: the same settings with the same checks, each one optional (its value is kept).
_OPTIONAL: dict[str, Any] = {
    name: (info.annotation, FieldInfo.merge_field_infos(info, default=None))
    for name, info in WebhookSettings.model_fields.items()
}
WebhookChanges = create_model(
    "WebhookChanges",
    __base__=WebhookSettings,
    __doc__="Some settings of a subscription (a PATCH): the others keep their values.",
    **_OPTIONAL,
)
WebhookChanges.partial = True


def _canonical(values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with seed 004's spellings under the settings' own names (the own name wins)."""
    out = dict(values)
    for spelling, field in _SPELLINGS.items():
        if spelling in out:
            given = out.pop(spelling)
            out.setdefault(field, given)
    return out


def _refuse(problems: list[str]) -> None:
    if problems:
        raise ValueError(problems[0])


def _details(exc: ValidationError) -> dict[str, list[str]]:
    """An `Invalid`'s details: one list of messages per setting (the checks above give our own words)."""
    words = {"missing": "is required", "extra_forbidden": "is not a webhook setting"}
    out: dict[str, list[str]] = {}
    for error in exc.errors(include_url=False):
        where = str(error["loc"][0]) if error["loc"] else "settings"
        if error["type"] == "value_error":
            message = str(error.get("ctx", {}).get("error"))
        else:
            message = words.get(error["type"], "is not valid")
        out.setdefault(where, []).append(message)
    return out


def _name_problems(value: Any) -> list[str]:
    if not isinstance(value, str) or not value.strip():
        return ["must be a non-empty string"]
    return text_problems(value, MAX_TITLE_CHARS)


def _url_problems(value: Any, vet: Callable[[str], object]) -> list[str]:
    if not isinstance(value, str):
        return ["is required"]
    try:
        vet(value)
    except BlockedTarget as exc:
        return [exc.message]
    return []


def _events_problems(value: Any) -> list[str]:
    if too_many := list_problems(value):  # before the per-item checks: a huge list is refused unread
        return too_many
    if not isinstance(value, list | tuple) or not value or not all(isinstance(e, str) for e in value):
        return ["must be a non-empty list of event names"]
    unknown = [e for e in value if not _known_pattern(e)]
    return [f"unknown event {unknown[0]!r}"] if unknown else []


def _content_types_problems(value: Any) -> list[str]:
    if too_many := list_problems(value):
        return too_many
    if not isinstance(value, list | tuple) or not all(isinstance(t, str) for t in value):
        return ["must be a list of content type names"]
    return []


_SPELLINGS = {"contentTypes": "content_types"}  # seed 004's spelling
WEBHOOK_KEYS = tuple(WebhookSettings.model_fields) + tuple(_SPELLINGS)
"""Every key a webhook's settings may have, in an API body or in cms.toml."""


@dataclass(frozen=True)
class Webhook:
    """A stored subscription: its settings, where it was declared, and how its deliveries are going."""

    id: str
    name: str
    url: str
    events: tuple[str, ...]
    content_types: tuple[str, ...] | None
    secret: str
    enabled: bool
    source: str  # api, cli or config
    created_at: str
    failing_since: str | None = None
    disabled_reason: str | None = None

    @property
    def settings(self) -> WebhookSettings:
        return WebhookSettings.model_construct(  # as stored: checked when it was written
            name=self.name,
            url=self.url,
            events=self.events,
            content_types=self.content_types,
            secret=self.secret,
            enabled=self.enabled,
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "url": self.url,
            "events": list(self.events),
            "content_types": list(self.content_types) if self.content_types is not None else None,
            "enabled": self.enabled,
            "source": self.source,
            "created_at": self.created_at,
            "failing_since": self.failing_since,
            "disabled_reason": self.disabled_reason,
            "secret_hint": secret_hint(self.secret),
        }

    def wants(self, event: Event) -> bool:
        """Whether this subscription is sent the event (enabled, its name matches, a document of a wanted type)."""
        if not self.enabled or not matches(self.events, event.name):
            return False
        if self.content_types is None:
            return True
        doc = next((v for k, v in event.data.items() if k in ("post", "page", "entry") and isinstance(v, dict)), None)
        return doc is not None and doc.get("type") in self.content_types


def _row_webhook(row: Any) -> Webhook:
    return Webhook(
        row["id"],
        row["name"],
        row["url"],
        tuple(json.loads(row["events"])),
        tuple(json.loads(row["content_types"])) if row["content_types"] is not None else None,
        row["secret"],
        bool(row["enabled"]),
        row["source"],
        row["created_at"],
        row["failing_since"],
        row["disabled_reason"],
    )


def _columns(settings: WebhookSettings, secret: str) -> tuple[Any, ...]:
    """name, url, events, content_types, secret, enabled as the `webhooks` table keeps them."""
    types = settings.content_types
    return (
        settings.name,
        settings.url,
        json.dumps(settings.events),
        json.dumps(types) if types is not None else None,
        secret,
        int(settings.enabled),
    )


class Subscriptions:
    """The webhook subscriptions of one site (the `webhooks` table of state.db)."""

    def __init__(self, site: Site, state: State, *, vet: Callable[[str], object], clock: Clock = utc_now) -> None:
        self.site = site
        self.state = state
        self.vet = vet  # raises BlockedTarget for a URL the site's [network] rules refuse
        self.clock = clock

    def create(
        self, values: Mapping[str, Any], *, source: str = "api", webhook_id: str | None = None
    ) -> tuple[Webhook, str | None]:
        """A new subscription; the generated secret is returned once (None when the caller gave one)."""
        settings = WebhookSettings.parse(values, vet=self.vet)
        secret = settings.secret or new_secret()
        hook_id = webhook_id or "wh_" + secrets.token_hex(8)
        with self.state.transaction() as db:
            db.execute(
                "INSERT INTO webhooks (id, name, url, events, content_types, secret, enabled, source, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (hook_id, *_columns(settings, secret), source, iso_z(self.clock(), "seconds")),
            )
        return self.get(hook_id), (None if settings.secret else secret)

    def update(self, hook_id: str, values: Mapping[str, Any]) -> Webhook:
        """Change some settings (a PATCH); enabling a subscription clears its failure marks."""
        hook = self.get(hook_id)
        if hook.source == "config":
            raise Conflict("this webhook is declared in cms.toml; change it there")
        settings = WebhookSettings.parse(values, vet=self.vet, current=hook.settings)
        enabled = int(settings.enabled)
        with self.state.transaction() as db:
            db.execute(
                "UPDATE webhooks SET name = ?, url = ?, events = ?, content_types = ?, secret = ?, enabled = ?,"
                " failing_since = CASE WHEN ? THEN NULL ELSE failing_since END,"
                " disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END WHERE id = ?",
                (*_columns(settings, settings.secret or hook.secret), enabled, enabled, hook_id),
            )
        return self.get(hook_id)

    def delete(self, hook_id: str) -> None:
        """Remove a subscription and cancel what it still had to send."""
        hook = self.get(hook_id)
        if hook.source == "config":
            raise Conflict("this webhook is declared in cms.toml; remove it there")
        with self.state.transaction() as db:
            db.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,))
            cancel_deliveries(db, hook_id, self.clock().timestamp(), sending=True)

    def get(self, hook_id: str) -> Webhook:
        rows = self.state.query("SELECT * FROM webhooks WHERE id = ?", (hook_id,))
        if not rows:
            raise NotFound(f"no webhook {hook_id!r}")
        return _row_webhook(rows[0])

    def all(self) -> list[Webhook]:
        """Every subscription, oldest first."""
        return [_row_webhook(r) for r in self.state.query("SELECT * FROM webhooks ORDER BY created_at, id")]

    def sync_config(self) -> None:
        """Make the `[[webhooks]]` of cms.toml present (ids `cfg_<hash of name>`), config winning.

        A config webhook without a secret gets a generated one, kept across restarts; a person
        with access to the site reads it with `cms webhooks secret ID`. Every process that opens
        the site runs this (the server, each `cms` command), so it is one transaction that only
        touches what differs: a declared webhook never disappears for a moment (an event
        enqueued meanwhile by a running server would miss it), and its `failing_since` is kept
        while its declaration is unchanged. One disabled by a 410 is enabled again, as declared.
        """
        wanted = {_config_id(raw): self._declared(raw) for raw in self.site.webhooks}
        with self.state.transaction() as db:
            cursor = db.execute("SELECT * FROM webhooks WHERE source = 'config'")
            cursor.row_factory = sqlite3.Row
            existing = {w.id: w for w in map(_row_webhook, cursor.fetchall())}
            for hook_id in set(existing) - set(wanted):
                db.execute("DELETE FROM webhooks WHERE id = ?", (hook_id,))
            for hook_id, settings in wanted.items():
                old = existing.get(hook_id)
                secret = settings.secret or (old.secret if old else new_secret())
                if old is not None and old.settings == settings.model_copy(update={"secret": secret}):
                    continue
                db.execute(
                    "INSERT INTO webhooks (id, name, url, events, content_types, secret, enabled, source, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, 'config', ?) ON CONFLICT (id) DO UPDATE SET name = excluded.name,"
                    " url = excluded.url, events = excluded.events, content_types = excluded.content_types,"
                    " secret = excluded.secret, enabled = excluded.enabled, failing_since = NULL,"
                    " disabled_reason = NULL",
                    (hook_id, *_columns(settings, secret), iso_z(self.clock(), "seconds")),
                )

    def _declared(self, raw: Mapping[str, Any]) -> WebhookSettings:
        """The settings of one `[[webhooks]]` table; a ConfigError naming the key or the webhook when bad."""
        try:
            return WebhookSettings.parse(raw, vet=self.vet)
        except Invalid as exc:
            unknown = [key for key in exc.details if key not in WEBHOOK_KEYS]
            if unknown:
                raise ConfigError(
                    f"unknown key webhooks.{unknown[0]} in cms.toml", key=f"webhooks.{unknown[0]}"
                ) from None
            raise ConfigError(f"webhook {raw.get('name')!r} in cms.toml: {exc.details}", key="webhooks") from None


def _config_id(raw: Mapping[str, Any]) -> str:
    """`cfg_` + a hash of the declared name (as written, so ids stay what earlier versions made them)."""
    return "cfg_" + hashlib.sha256(str(raw.get("name", "")).encode()).hexdigest()[:12]
