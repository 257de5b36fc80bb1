"""Commands that show the site: `serve` (the API and a live preview) and `build` (the static site)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from cms.cli.common import EXIT_PROBLEMS, handle_errors, site_of, site_option
from cms.cli.webhooks import deliver_events


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="Port to bind.")
@click.option("--no-watch", is_flag=True, help="Do not watch content/ for hand edits.")
@click.option("--drafts", is_flag=True, help="Show drafts and scheduled documents in the preview, marked as such.")
@click.option("--no-preview", is_flag=True, help="Serve only the API, not the site preview at /.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="uvicorn worker processes.")
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@site_option
@handle_errors
def serve(
    host: str,
    port: int,
    no_watch: bool,
    drafts: bool,
    no_preview: bool,
    workers: int,
    log_level: str,
    site_path: str | None,
) -> None:
    """Serve the REST API and a live preview of the site (with live reload) until Ctrl-C."""
    from cms.serve import serve as run_server

    try:
        run_server(
            site_of(site_path),
            host=host,
            port=port,
            watch=not no_watch,
            workers=workers,
            log_level=log_level,
            preview=not no_preview,
            drafts=drafts,
        )
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a server stops: uvicorn has already shut down cleanly


@click.command(name="build")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output folder (default: paths.output).")
@click.option("--drafts", is_flag=True, help="Include drafts and scheduled documents, marked as such.")
@click.option("--base-url", default=None, help="Override site.base_url (e.g. for a preview deploy).")
@click.option("--clean", is_flag=True, help="Ignore the previous build: render and check every output.")
@click.option("--quiet", is_flag=True, help="Print only errors and the summary line.")
@site_option
@handle_errors
def build_command(
    out: str | None, drafts: bool, base_url: str | None, clean: bool, quiet: bool, site_path: str | None
) -> None:
    """Render the static site, re-rendering only what changed since the last build."""
    from cms.content.index import Index
    from cms.render.build import build

    site = site_of(site_path)
    index = Index.load(site, fill_search=False, use_snapshot=True)
    for rel, problem in sorted(index.problems.items()):
        click.echo(f"{site.paths.content}/{rel}:{problem.line}: {problem.message}", err=True)
    progress, finish = _progress(quiet)
    try:
        result = build(
            site,
            index,
            out=Path(out) if out else None,
            drafts=drafts,
            base_url=base_url,
            clean=clean,
            progress=progress,
        )
    finally:
        finish()
    for error in result.errors:
        click.echo(f"error: {error}", err=True)
    click.echo(result.summary())
    deliver_events(site, result.events)
    if result.errors or index.problems:
        sys.exit(EXIT_PROBLEMS)


def _progress(quiet: bool) -> tuple[Any, Callable[[], None]]:
    """A rich progress bar on a terminal for long builds; nothing in CI or with --quiet."""
    if quiet or not sys.stderr.isatty():
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )
    task = bar.add_task("rendering", total=None)
    started = time.perf_counter()
    state = {"shown": False}

    def update(done: int, total: int) -> None:
        if not state["shown"] and time.perf_counter() - started > 1.0:  # only builds that take a while
            bar.start()
            state["shown"] = True
        bar.update(task, completed=done, total=total)

    def finish() -> None:
        if state["shown"]:
            bar.stop()

    return update, finish
