"""Commands over the site's files: `init`, `new`, `check`, `index` and `media rebuild`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from cms.cli.common import EXIT_PROBLEMS, handle_errors, site_of, site_option
from cms.cli.webhooks import deliver_events


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--title", default="My site", show_default=True, help="Site title.")
@handle_errors
def init(directory: str, title: str) -> None:
    """Create a new site in DIRECTORY (cms.toml, content/, a first post)."""
    from cms.scaffold import scaffold

    created = scaffold(Path(directory), title=title)
    for path in created:
        click.echo(f"created {path}")
    click.echo(f"\nnext: cd {directory} && cms serve")


@click.command()
@click.argument("type_name", metavar="TYPE")
@click.argument("title")
@click.option("--slug", default=None, help="Slug (default: from the title).")
@click.option("--publish", is_flag=True, help="Publish now instead of creating a draft.")
@click.option("--tag", "tags", multiple=True, help="A tag (repeatable).")
@click.option("--category", "categories", multiple=True, help="A category slug (repeatable).")
@site_option
@handle_errors
def new(
    type_name: str,
    title: str,
    slug: str | None,
    publish: bool,
    tags: tuple[str, ...],
    categories: tuple[str, ...],
    site_path: str | None,
) -> None:
    """Write a new document of TYPE with an id, slug and date, and print its path."""
    from cms.content.index import Index
    from cms.content.store import Store

    site = site_of(site_path)
    index = Index.load(site, fill_search=False, use_snapshot=True)
    values: dict[str, Any] = {"title": title, "content": "", "status": "published" if publish else "draft"}
    if slug:
        values["slug"] = slug
    if tags:
        values["tags"] = list(tags)
    if categories:
        values["categories"] = list(categories)
    if site.defaults.author and site.defaults.author in index.terms.get("authors", {}):
        values["author"] = site.defaults.author
    doc = Store(site, index).create(type_name, values, source="cli")
    click.echo(site.content_dir / doc.path)


@click.command()
@site_option
@handle_errors
def check(site_path: str | None) -> None:
    """Validate every content file; print `file:line: message` per problem and exit 1 if any."""
    from cms.content.index import Index

    site = site_of(site_path)
    index = Index.load(site, fill_search=False, use_snapshot=True)
    root = site.content_dir.relative_to(site.root)
    for rel, problem in sorted(index.problems.items()):
        click.echo(f"{root / rel}:{problem.line}: {problem.message}")
    if index.problems:
        click.echo(f"{len(index.problems)} problem(s) in {len(index) + len(index.problems)} file(s)", err=True)
        sys.exit(EXIT_PROBLEMS)
    click.echo(f"ok: {len(index)} documents, {len(index.types)} content types, no problems")


@click.command(name="index")
@site_option
@handle_errors
def index_command(site_path: str | None) -> None:
    """Load the index and print counts per type and status, terms and load time."""
    from datetime import UTC, datetime

    from cms.content.index import Index

    site = site_of(site_path)
    started = time.perf_counter()
    index = Index.load(site, fill_search=False, use_snapshot=True)
    elapsed = time.perf_counter() - started
    now = datetime.now(UTC)
    counts: dict[str, dict[str, int]] = {}
    for doc in index.docs.values():
        per_type = counts.setdefault(doc.type, {})
        status = doc.status_at(now).value
        per_type[status] = per_type.get(status, 0) + 1
    for type_name in sorted(counts):
        detail = ", ".join(f"{n} {s}" for s, n in sorted(counts[type_name].items()))
        click.echo(f"{type_name:<12} {sum(counts[type_name].values()):>6}  ({detail})")
    for taxonomy in (*site.taxonomy_names, "authors"):
        click.echo(f"{taxonomy:<12} {len(index.all_terms(taxonomy)):>6}")
    click.echo(f"problems     {len(index.problems):>6}")
    click.echo(f"loaded {len(index)} documents in {elapsed * 1000:.0f} ms")


@click.group()
def media() -> None:
    """The media library in uploads/: rebuild derivatives and sidecars."""


@media.command("rebuild")
@site_option
@handle_errors
def media_rebuild(site_path: str | None) -> None:
    """Regenerate every image's AVIF/WebP files, take in images dropped into uploads/, prune leftovers."""
    from cms.events.bus import Event
    from cms.media import MediaLibrary

    site = site_of(site_path)
    library = MediaLibrary.load(site)
    if sys.stderr.isatty():  # a bar on a terminal, one plain line per image otherwise (CI, logs)
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        task = bar.add_task("converting", total=max(1, len(library)))

        def progress(path: str, done: int, total: int) -> None:
            bar.update(task, description=path[-40:], completed=done, total=max(1, total))

        with bar:
            report = library.rebuild(progress)
    else:
        report = library.rebuild(lambda path, done, total: click.echo(f"[{done}/{total}] {path}"))
    library.close()
    for rel in report.pruned:
        click.echo(f"pruned {rel} (its original is gone)")
    for item in report.ingested:
        click.echo(f"new    {item.rel(item.file)} ({item.width}x{item.height}, id {item.id})")
    for rel, reason in report.failed:
        click.echo(f"error: {rel}: {reason}", err=True)
    click.echo(
        f"{len(report.regenerated)} regenerated, {len(report.ingested)} new, "
        f"{len(report.pruned)} pruned, {len(report.failed)} failed"
    )
    base = site.site.base_url
    deliver_events(
        site, [Event("media.uploaded", {"media": i.as_dict(base)}, source="cli", key=i.id) for i in report.ingested]
    )
    if report.failed:
        sys.exit(EXIT_PROBLEMS)
