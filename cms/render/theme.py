"""The theme: a Jinja2 environment over `themes/<name>/templates`, falling back to the built-in theme.

Autoescape is on for every template (HTML and XML alike); the only HTML a template receives
unescaped is Markdown output that already went through the raw-HTML policy, marked safe in
exactly one place (`build._render_body`). A template error names the template file and line.
"""

from __future__ import annotations

import hashlib
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape

from cms.config import Site
from cms.errors import CMSError

BUILTIN_THEME = Path(__file__).resolve().parent.parent.parent / "themes" / "default"


class ThemeError(CMSError):
    """A template that cannot be loaded or rendered; the message names the file and line."""

    code = "THEME_ERROR"


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
    loaders = [FileSystemLoader(str(d / "templates")) for d in theme_dirs(site)]
    env = Environment(
        loader=ChoiceLoader(loaders),
        autoescape=select_autoescape(enabled_extensions=("html", "htm", "xml"), default_for_string=True, default=True),
        undefined=StrictUndefined,  # a typo in a template is an error, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    tz = site.tz
    env.filters["date"] = lambda value, fmt="%d %B %Y": _local(value, tz).strftime(fmt) if value else ""
    env.filters["isodate"] = lambda value: _local(value, tz).isoformat() if value else ""
    env.filters["rfc822"] = lambda value: _local(value, tz).strftime("%a, %d %b %Y %H:%M:%S %z") if value else ""
    env.filters["rfc3339"] = lambda value: value.isoformat().replace("+00:00", "Z") if value else ""
    return env


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
        return env.get_template(name).render(context)
    except TemplateError as exc:
        where = getattr(exc, "filename", None) or getattr(exc, "name", None) or name
        line = getattr(exc, "lineno", None)
        raise ThemeError(f"{where}:{line or '?'}: {exc}") from None
