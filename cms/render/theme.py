"""The theme: a Jinja2 environment over `themes/<name>/templates`, falling back to the built-in theme.

Autoescape is on for every template (HTML and XML alike); the only HTML a template receives
unescaped is Markdown output that already went through the raw-HTML policy, marked safe in
exactly one place (`build._render_body`). A template error names the template file and line.
"""

from __future__ import annotations

import hashlib
import re
import threading
import traceback
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from markupsafe import Markup

from cms.clock import iso_z
from cms.config import Site
from cms.errors import ThemeError as ThemeError  # (re-exported: its old home)

BUILTIN_THEME = Path(__file__).resolve().parent.parent.parent / "themes" / "default"


def theme_dirs(site: Site) -> list[Path]:
    """The theme folders in lookup order: the site's chosen theme, then the built-in default."""
    chosen = site.themes_dir / site.site.theme
    dirs = [chosen] if chosen.is_dir() else []
    if BUILTIN_THEME.is_dir() and BUILTIN_THEME.resolve() not in [d.resolve() for d in dirs]:
        dirs.append(BUILTIN_THEME)
    if not dirs:
        raise ThemeError(f"theme {site.site.theme!r} not found in {site.themes_dir} and no built-in theme")
    return dirs


def make_environment(site: Site) -> Environment:
    """The theme's Jinja2 environment, reused while the theme's files stay the same.

    Compiling the templates costs more than rendering a small site, and the preview rebuilds after
    every edit, so the environment of the last build is kept per theme folders and time zone; any
    change to a theme file (an edit, a new override, a removed one) gives a fresh environment."""
    key = (tuple(str(d.resolve()) for d in theme_dirs(site)), str(site.tz))
    version = template_digest(site)
    with _ENV_LOCK:
        kept = _ENVIRONMENTS.get(key)
        if kept is not None and kept[0] == version:
            return kept[1]
        env = _new_environment(site)
        _ENVIRONMENTS[key] = (version, env)
    return env


_ENVIRONMENTS: dict[tuple[tuple[str, ...], str], tuple[str, Environment]] = {}
_ENV_LOCK = threading.Lock()


def _new_environment(site: Site) -> Environment:
    loaders = [FileSystemLoader(str(d / "templates")) for d in theme_dirs(site)]
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=True, default=True),
        undefined=StrictUndefined,  # a typo in a template is an error, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        # No stat of the template file at each use: `make_environment` already gives a fresh
        # environment when any theme file changes (a tenth of a build's template time).
        auto_reload=False,
    )
    tz = site.tz
    env.filters["date"] = lambda value, fmt="%d %B %Y": _local(value, tz).strftime(fmt) if value else ""
    env.filters["isodate"] = lambda value: _local(value, tz).isoformat() if value else ""
    env.filters["rfc822"] = lambda value: _local(value, tz).strftime("%a, %d %b %Y %H:%M:%S %z") if value else ""
    env.filters["longdate"] = lambda value: _long_date(_local(value, tz)) if value else ""
    env.filters["rfc3339"] = _rfc3339
    return env


def _long_date(moment: datetime) -> str:
    """The day as "5 March 2026": no leading zero (strftime's %-d is not portable)."""
    return f"{moment.day} {moment:%B %Y}"


def _rfc3339(value: Any) -> str:
    """A moment as RFC 3339 in UTC (`...Z`, as Atom wants); a bare date stays `YYYY-MM-DD`."""
    if not value:
        return ""
    return iso_z(value) if isinstance(value, datetime) else str(value.isoformat())


def _local(value: Any, tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(tz)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=tz)
    raise TypeError(f"not a date: {value!r}")


def template_digest(site: Site) -> str:
    """A hash of every template and static file of the theme chain: a change re-renders what uses it."""
    h = hashlib.sha256()
    for folder in theme_dirs(site):
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            h.update(path.relative_to(folder).as_posix().encode() + b"\0" + path.read_bytes())
    return h.hexdigest()


class PartialCache:
    """`partial_cached(name, **values)` in templates: the template `name` rendered with `values` (and
    the environment's globals and filters, nothing of the calling page), once per build and render
    process for the same values, like Hugo's `partialCached`.

    A post's card appears on its home page, category, tag, author and archive pages: rendering it
    once instead of on each is a sixth of a large site's build. Values are told apart by identity
    (strings and numbers by value): the views a build hands to templates do not change while it
    runs, and a new build starts with a new cache."""

    def __init__(self, env: Environment) -> None:
        self._env = env
        self._kept: dict[tuple[Any, ...], tuple[Markup, tuple[Any, ...]]] = {}

    def __call__(self, name: str, /, **values: Any) -> Markup:
        key = (name, *sorted((k, v if isinstance(v, _BY_VALUE) else id(v)) for k, v in values.items()))
        found = self._kept.get(key)
        if found is None:
            if len(self._kept) >= _MAX_PARTIALS:  # a long-lived preview keeps its plan, and so this cache
                self._kept.clear()
            # The values are kept with the fragment so that no other object can take their ids.
            found = self._kept[key] = (Markup(self._env.get_template(name).render(values)), tuple(values.values()))
        return found[0]


_BY_VALUE = (str, int, float, bool, type(None))
_MAX_PARTIALS = 100_000


def static_files(site: Site) -> dict[str, Path]:
    """`static/...` files of the theme chain, the chosen theme winning over the built-in one."""
    files: dict[str, Path] = {}
    for folder in reversed(theme_dirs(site)):
        static = folder / "static"
        if static.is_dir():
            for path in sorted(p for p in static.rglob("*") if p.is_file() and not p.is_symlink()):
                files["static/" + path.relative_to(static).as_posix()] = path
    return files


def render_template(env: Environment, name: str, context: dict[str, Any]) -> str:
    """Render a template; ThemeError names the template file and line on failure."""
    try:
        text = env.get_template(name).render(context)
        # XML 1.0 cannot hold most control characters, even escaped: one pasted into a title would
        # make the whole feed unreadable, so they are dropped from XML outputs.
        return _XML_INVALID.sub("", text) if name.endswith(".xml") else text
    except TemplateError as exc:
        where = getattr(exc, "filename", None) or getattr(exc, "name", None) or name
        line = getattr(exc, "lineno", None)
        if line is None:  # a runtime error (undefined name, bad filter argument): find the template's frame
            where, line = _template_frame(exc) or (where, None)
        raise ThemeError(f"{where}:{line or '?'}: {exc}") from None
    except (TypeError, ValueError, AttributeError, KeyError, IndexError, ArithmeticError) as exc:
        # Raised inside a filter or a method a template called (`{{ title|date }}`, `{{ 1 / 0 }}`):
        # the template is still what is broken, so report it like a template error, not a traceback.
        where, line = _template_frame(exc) or (name, None)
        raise ThemeError(f"{where}:{line or '?'}: {type(exc).__name__}: {exc}") from None


_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _template_frame(exc: BaseException) -> tuple[str, int] | None:
    """File and line of the innermost template frame of a render error.

    Jinja2 rewrites tracebacks so that a template's frames carry the template file as their file
    name and the template line as their line number; the innermost one is where the error is."""
    found = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename.endswith((".html", ".htm", ".xml")) and frame.lineno:
            found = (frame.filename, frame.lineno)
    return found
