"""What every `cms` command shares: the `main` group, the `--site` option, and errors as exit codes."""

from __future__ import annotations

import atexit
import functools
import gc
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from cms import __version__
from cms.config import Site
from cms.errors import CMSError, ConfigError, ParseError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_PROBLEMS = 1  # `cms check` found problems, a build had errors
EXIT_USAGE = 2  # click's own code for bad usage
EXIT_CONFIG = 3


def site_of(path: str | None) -> Site:
    return Site.load(path) if path else Site.discover()


def handle_errors(func: F) -> F:
    """Turn the CMS's errors into one-line messages and exit codes, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            click.echo(f"error: {exc.message}", err=True)
            sys.exit(EXIT_CONFIG)
        except ParseError as exc:
            click.echo(f"{exc}", err=True)
            sys.exit(EXIT_PROBLEMS)
        except CMSError as exc:
            detail = f" {exc.details}" if exc.details else ""
            click.echo(f"error: {exc.message}{detail}", err=True)
            sys.exit(EXIT_PROBLEMS)

    return wrapper  # type: ignore[return-value]


site_option = click.option(
    "--site",
    "site_path",
    type=click.Path(file_okay=False),
    default=None,
    help="Site folder (default: the nearest folder holding cms.toml).",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="cms")
def main() -> None:
    """A flat-file CMS: Markdown in git, a REST API, webhooks and a fast static build."""
    _no_collection_at_exit()


@functools.cache
def _no_collection_at_exit() -> None:
    """At exit, the interpreter's last garbage collection walks every object left: after a build of
    10,000 posts that took 0.6 s to find nothing. Frozen objects are not walked, and the memory goes
    back to the system with the process anyway."""
    atexit.register(gc.freeze)
