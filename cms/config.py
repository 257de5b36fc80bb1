"""Site configuration: cms.toml read once into one frozen `Site` object.

Every setting is declared once below, as a dataclass field with its default and help text
(`field(..., metadata={"help": ...})`), so `docs/config.md` can be checked against the code.
Nothing else in the package reads cms.toml or the environment.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import itertools
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cms.errors import ConfigError

CONFIG_NAME = "cms.toml"


def _h(default: Any, help: str) -> Any:
    """A settings field with a default and its help text."""
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class SiteSection:
    title: str = _h("My site", "Site title, used by the theme, feeds and the API settings endpoint.")
    description: str = _h("", "One-sentence description of the site (feeds, meta description).")
    base_url: str = _h("http://localhost:8000", "Public URL of the built site, without a trailing slash.")
    language: str = _h("en", "Default language of the content (BCP 47, e.g. en, de, zh-TW).")
    timezone: str = _h("UTC", "IANA timezone for display and for dates written without an offset.")
    theme: str = _h("default", "Theme folder under paths.themes used by `cms build` and the preview.")


@dataclass(frozen=True)
class PathsSection:
    content: str = _h("content", "Folder of Markdown documents, one subfolder per content type.")
    uploads: str = _h("uploads", "Folder of uploaded media, served at /uploads/.")
    themes: str = _h("themes", "Folder of Jinja2 themes.")
    output: str = _h("public", "Output folder of `cms build`.")
    state: str = _h(".cms", "Local state (keys, outbox, build manifest); never commit it.")


@dataclass(frozen=True)
class DefaultsSection:
    per_page: int = _h(20, "Default page size of API lists and site archives.")
    max_per_page: int = _h(100, "Largest page size a client may ask for.")
    author: str = _h("", "Author slug given to new documents that name none.")


@dataclass(frozen=True)
class ApiSection:
    require_if_match: bool = _h(False, "Answer 428 to PUT/PATCH/DELETE without an If-Match header.")
    max_json_bytes: int = _h(1_048_576, "Largest JSON request body in bytes (413 above it).")
    max_json_depth: int = _h(32, "Deepest nesting of a JSON request body (400 above it).")
    max_query_bytes: int = _h(8192, "Longest query string in bytes (414 above it).")
    allow_query_token: bool = _h(False, "Accept `api_token` in the query string or JSON body (weaker).")
    public_types: list[str] = _h([], "Content types whose published documents anyone may read without a key.")
    cors_origins: list[str] = _h([], "Origins allowed by CORS; none by default.")
    rate_limit_per_minute: int = _h(60, "Requests per minute per key.")
    rate_limit_per_day: int = _h(10_000, "Requests per day per key.")
    failed_auth_per_minute: int = _h(20, "Failed authentications per minute per client address before 429.")


@dataclass(frozen=True)
class NetworkSection:
    allow_private_addresses: bool = _h(
        False,
        "Let webhooks and image localization reach every private and loopback address (for local test setups;"
        " prefer allowed_hosts). Never link-local or cloud metadata addresses.",
    )
    allowed_hosts: list[str] = _h(
        [],
        "Host names and IP addresses that webhooks and image localization may reach although they are private"
        ' (any port), e.g. ["10.0.0.5", "n8n.internal"]. Never link-local or cloud metadata addresses.',
    )
    public_targets: bool = _h(
        True,
        "Let webhooks and image localization reach public addresses; false keeps them to allowed_hosts (and"
        " private addresses when allowed): a closed network, or a fuzzed test server that must not reach out.",
    )


@dataclass(frozen=True)
class RenderSection:
    raw_html: str = _h("sanitize", "Raw HTML in Markdown: sanitize (default), trust, or escape.")
    highlight: bool = _h(True, "Highlight fenced code blocks with Pygments.")
    engine: str = _h("markdown-it-pyrs", "Markdown engine: markdown-it-pyrs (compiled, fast) or markdown-it-py.")


@dataclass(frozen=True)
class DeliverySection:
    retry_schedule: list[int] = _h(
        [5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400],
        "Seconds to wait before each retry of a failed webhook delivery (then it is marked failed).",
    )
    time_scale: float = _h(1.0, "Multiplier for every retry wait and Retry-After (tests use 0.001).")
    timeout: float = _h(10.0, "Seconds a receiver has to answer one delivery attempt.")
    workers: int = _h(4, "Deliveries sent at the same time (to different endpoints or documents).")
    keep_days: int = _h(30, "Days the delivery log keeps finished deliveries and their attempts.")
    jitter: float = _h(0.2, "Random spread of each retry wait, as a fraction (0.2 = plus or minus 20%).")


@dataclass(frozen=True)
class HistorySection:
    commit: bool = _h(
        True,
        "Make every write through the store (API, CLI) one git commit of the files it changed, when "
        "content/ is inside a git work tree; false leaves committing to you.",
    )


@dataclass(frozen=True)
class MediaSection:
    max_bytes: int = _h(10_485_760, "Largest image upload in bytes (413 above it).")
    max_pixels: int = _h(50_000_000, "Largest image in pixels, width times height (422 above it).")
    widths: list[int] = _h([480, 960, 1600], "Widths of the responsive AVIF/WebP variants; never upscaled.")
    avif_quality: int = _h(60, "AVIF encoder quality, 1-100.")
    avif_speed: int = _h(6, "AVIF encoder speed, 1 (slow, small files) to 10 (fast).")
    webp_quality: int = _h(80, "WebP encoder quality, 1-100.")
    strip_original: bool = _h(False, "Also strip EXIF (GPS, camera data) from the stored original.")
    folder_pattern: str = _h("images/%Y/%m", "Folder under uploads/ for new images (strftime pattern).")


@dataclass(frozen=True)
class TaxonomySection:
    """A custom taxonomy: documents list its terms in the frontmatter key of the same name."""

    label: str = _h("", "Human name of the taxonomy.")
    hierarchical: bool = _h(False, "Terms may name a parent term.")
    types: list[str] = _h([], "Content types that use it (empty: all).")


SECTIONS: dict[str, type] = {
    "site": SiteSection,
    "paths": PathsSection,
    "defaults": DefaultsSection,
    "api": ApiSection,
    "network": NetworkSection,
    "render": RenderSection,
    "delivery": DeliverySection,
    "media": MediaSection,
    "history": HistorySection,
}

# Folders of content/ that hold taxonomy terms or people, not documents.
BUILTIN_TAXONOMIES = ("categories", "tags")
RESERVED_FOLDERS = ("categories", "tags", "authors")


@dataclass(frozen=True)
class Site:
    """One site root and its settings. Build it with `Site.load` or `Site.discover`."""

    root: Path
    site: SiteSection = field(default_factory=SiteSection)
    paths: PathsSection = field(default_factory=PathsSection)
    defaults: DefaultsSection = field(default_factory=DefaultsSection)
    api: ApiSection = field(default_factory=ApiSection)
    network: NetworkSection = field(default_factory=NetworkSection)
    render: RenderSection = field(default_factory=RenderSection)
    delivery: DeliverySection = field(default_factory=DeliverySection)
    media: MediaSection = field(default_factory=MediaSection)
    history: HistorySection = field(default_factory=HistorySection)
    taxonomies: dict[str, TaxonomySection] = field(default_factory=dict)
    webhooks: tuple[dict[str, Any], ...] = ()

    # -- derived paths ---------------------------------------------------------------------
    @property
    def content_dir(self) -> Path:
        return self.root / self.paths.content

    @property
    def uploads_dir(self) -> Path:
        return self.root / self.paths.uploads

    @property
    def themes_dir(self) -> Path:
        return self.root / self.paths.themes

    @property
    def output_dir(self) -> Path:
        return self.root / self.paths.output

    @property
    def state_dir(self) -> Path:
        return self.root / self.paths.state

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.site.timezone)

    @property
    def taxonomy_names(self) -> tuple[str, ...]:
        return BUILTIN_TAXONOMIES + tuple(self.taxonomies)

    @property
    def reserved_folders(self) -> tuple[str, ...]:
        return RESERVED_FOLDERS + tuple(self.taxonomies)

    # -- loading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, root: Path | str) -> Site:
        """Read `root/cms.toml` (defaults for a missing file) into a Site."""
        root = Path(root).resolve()
        path = root / CONFIG_NAME
        data: dict[str, Any] = {}
        if path.exists():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise ConfigError(f"{path}: {exc}") from exc
        return cls.from_dict(root, data)

    @classmethod
    def discover(cls, start: Path | str | None = None) -> Site:
        """Walk up from `start` (default: the working directory) to the folder holding cms.toml."""
        here = Path(start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_NAME).is_file():
                return cls.load(folder)
        raise ConfigError(f"no {CONFIG_NAME} found in {here} or any parent folder; run `cms init DIR` first")

    @classmethod
    def from_dict(cls, root: Path, data: dict[str, Any]) -> Site:
        """Build a Site from parsed TOML, naming the key of any bad value."""
        kwargs: dict[str, Any] = {}
        for name, section in data.items():
            if name in SECTIONS:
                kwargs[name] = _section(SECTIONS[name], name, section)
            elif name == "taxonomies":
                if not isinstance(section, dict):
                    raise ConfigError("[taxonomies] must be a table", key="taxonomies")
                kwargs["taxonomies"] = {
                    tname: _section(TaxonomySection, f"taxonomies.{tname}", tconf) for tname, tconf in section.items()
                }
            elif name == "webhooks":
                if not isinstance(section, list) or not all(isinstance(w, dict) for w in section):
                    raise ConfigError("[[webhooks]] must be an array of tables", key="webhooks")
                kwargs["webhooks"] = tuple(section)
            else:
                known = ", ".join([*SECTIONS, "taxonomies", "webhooks"])
                raise ConfigError(f"unknown section [{name}] in {CONFIG_NAME}; known: {known}", key=name)
        site = cls(root=root, **kwargs)
        _check(site)
        return site


def _section(cls: type, name: str, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"[{name}] must be a table", key=name)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in fields:
            raise ConfigError(
                f"unknown key {name}.{key} in {CONFIG_NAME}; known: {', '.join(fields)}", key=f"{name}.{key}"
            )
        default = fields[key].default
        if default is dataclasses.MISSING:
            default = fields[key].default_factory()  # type: ignore[operator]
        expected = type(default)
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # TOML writes 1 for 1.0
        ok = isinstance(value, expected) and not (expected is int and isinstance(value, bool))
        if expected is list and ok:
            item = type(default[0]) if default else str
            ok = all(isinstance(v, item) and not isinstance(v, bool) for v in value)
        if not ok:
            raise ConfigError(
                f"{name}.{key} must be {expected.__name__}, got {value!r}", key=f"{name}.{key}", value=value
            )
        values[key] = value
    return cls(**values)


_TAXONOMY_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")


def _check(site: Site) -> None:
    tz = site.site.timezone
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"site.timezone {tz!r} is not an IANA timezone", key="site.timezone", value=tz) from exc
    raw = site.render.raw_html
    if raw not in ("sanitize", "trust", "escape"):
        raise ConfigError(
            f"render.raw_html must be sanitize, trust or escape, got {raw!r}", key="render.raw_html", value=raw
        )
    for section in SECTIONS:  # a negative body limit or page size is never meant
        for key, value in dataclasses.asdict(getattr(site, section)).items():
            if isinstance(value, int) and not isinstance(value, bool) and value < 1:
                raise ConfigError(
                    f"{section}.{key} must be a positive integer, got {value!r}", key=f"{section}.{key}", value=value
                )
    _check_media(site.media)
    _check_hosts(site.network.allowed_hosts)
    per_page, most = site.defaults.per_page, site.defaults.max_per_page
    if not 1 <= per_page <= most:
        raise ConfigError(
            f"defaults.per_page must be between 1 and max_per_page ({most}), got {per_page!r}",
            key="defaults.per_page",
            value=per_page,
        )
    folders: dict[str, PurePosixPath] = {}
    for name, path in dataclasses.asdict(site.paths).items():
        pure = PurePosixPath(path.replace("\\", "/"))
        if pure.is_absolute() or Path(path).is_absolute() or ".." in pure.parts or not pure.parts:
            raise ConfigError(
                f"paths.{name} must be a folder inside the site root, got {path!r}", key=f"paths.{name}", value=path
            )
        folders[name] = pure
    # One folder inside another (output = "content", state inside content...) would let the build
    # overwrite content or make the index read its own state: each needs its own place.
    for a, b in itertools.combinations(folders, 2):
        if folders[a].is_relative_to(folders[b]) or folders[b].is_relative_to(folders[a]):
            raise ConfigError(
                f"paths.{a} ({str(folders[a])!r}) and paths.{b} ({str(folders[b])!r}) must not overlap",
                key=f"paths.{b}",
                value=str(folders[b]),
            )
    for tname in site.taxonomies:  # a taxonomy name is a folder of content/
        if not _TAXONOMY_NAME_RE.fullmatch(tname):
            raise ConfigError(
                f"taxonomy name {tname!r} must be 1-64 lower-case letters, digits, '_' or '-', starting with a letter",
                key=f"taxonomies.{tname}",
                value=tname,
            )
    clash = set(site.taxonomies) & {"posts", "pages", *RESERVED_FOLDERS}
    if clash:
        name = sorted(clash)[0]
        raise ConfigError(f"taxonomy name {name!r} is reserved", key=f"taxonomies.{name}", value=name)


# A bare host name (letters, digits, `-`, `_`, dots) or an IP address; no scheme, port, path or wildcard.
_HOST_NAME_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,62})(?:\.[a-z0-9_](?:[a-z0-9_-]{0,62}))*\.?", re.IGNORECASE)


def _check_hosts(hosts: list[str]) -> None:
    for host in hosts:
        try:
            ipaddress.ip_address(host.strip("[]"))
            continue
        except ValueError:
            pass
        if len(host) > 253 or not _HOST_NAME_RE.fullmatch(host):
            raise ConfigError(
                f"network.allowed_hosts entries must be bare host names or IP addresses, got {host!r}",
                key="network.allowed_hosts",
                value=host,
            )


def _check_media(media: MediaSection) -> None:
    for key, top in (("avif_quality", 100), ("webp_quality", 100), ("avif_speed", 10)):
        value = getattr(media, key)
        if value > top:
            raise ConfigError(f"media.{key} must be at most {top}, got {value!r}", key=f"media.{key}", value=value)
    bad = [w for w in media.widths if not 16 <= w <= 16384]
    if bad or not media.widths:
        raise ConfigError(
            f"media.widths must list widths between 16 and 16384, got {media.widths!r}",
            key="media.widths",
            value=media.widths,
        )
    pattern = media.folder_pattern
    try:
        folder = datetime(2026, 1, 2, tzinfo=UTC).strftime(pattern)
    except ValueError as exc:
        raise ConfigError(
            f"media.folder_pattern {pattern!r}: {exc}", key="media.folder_pattern", value=pattern
        ) from None
    parts = folder.split("/")
    if "\\" in folder or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        raise ConfigError(
            f"media.folder_pattern must be a relative folder like images/%Y/%m, got {pattern!r}",
            key="media.folder_pattern",
            value=pattern,
        )
