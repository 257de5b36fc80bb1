"""The `cms` command: each command is a few lines over the services; errors become exit codes here."""

from __future__ import annotations

import atexit
import functools
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from cms import __version__
from cms.config import Site
from cms.errors import CMSError, ConfigError, ParseError

F = TypeVar("F", bound=Callable[..., Any])

EXIT_PROBLEMS = 1  # `cms check` found problems, a build had errors
EXIT_USAGE = 2  # click's own code for bad usage
EXIT_CONFIG = 3


def _site(path: str | None) -> Site:
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


@main.command()
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


@main.command()
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

    site = _site(site_path)
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


@main.command()
@site_option
@handle_errors
def check(site_path: str | None) -> None:
    """Validate every content file; print `file:line: message` per problem and exit 1 if any."""
    from cms.content.index import Index

    site = _site(site_path)
    index = Index.load(site, fill_search=False, use_snapshot=True)
    root = site.content_dir.relative_to(site.root)
    for rel, problem in sorted(index.problems.items()):
        click.echo(f"{root / rel}:{problem.line}: {problem.message}")
    if index.problems:
        click.echo(f"{len(index.problems)} problem(s) in {len(index) + len(index.problems)} file(s)", err=True)
        sys.exit(EXIT_PROBLEMS)
    click.echo(f"ok: {len(index)} documents, {len(index.types)} content types, no problems")


@main.command()
@click.option("--strict", is_flag=True, help="Exit 1 when anything is missing or differs from the lock.")
def doctor(strict: bool) -> None:
    """Versions in use, optional features, and the command that fixes what is missing."""
    from cms import doctor as diagnosis

    findings = diagnosis.diagnose()
    width = max(len(f.name) for f in findings)
    marks = {diagnosis.OK: "ok", diagnosis.MISSING: "MISSING", diagnosis.DIFFERS: "DIFFERS"}
    for finding in findings:
        click.echo(f"{finding.name:<{width}}  {marks[finding.status]:<7}  {finding.detail}")
    fixes = sorted({f.fix for f in findings if f.status != diagnosis.OK and f.fix})
    if fixes:
        click.echo("\nto fix:")
        for fix in fixes:
            click.echo(f"  {fix}")
    if strict and any(f.status != diagnosis.OK for f in findings):
        sys.exit(EXIT_PROBLEMS)


@main.command(name="index")
@site_option
@handle_errors
def index_command(site_path: str | None) -> None:
    """Load the index and print counts per type and status, terms and load time."""
    from datetime import UTC, datetime

    from cms.content.index import Index

    site = _site(site_path)
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


@main.command()
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
            _site(site_path),
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


@main.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed in .cms/state.db)."""


def _keys(site_path: str | None) -> Any:
    from cms.auth import Keys
    from cms.state import State

    site = _site(site_path)
    return Keys(State(site.state_dir))


@keys.command("create")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--scopes", default="read", show_default=True, help="Comma-separated: read, write, delete, admin.")
@click.option("--expires", default=None, help="Expiry as an ISO 8601 date-time (e.g. 2027-01-01T00:00:00Z).")
@click.option("--with-secret", is_flag=True, help="Also require an X-API-Secret header (key + secret pair).")
@click.option("--types", default=None, help="Comma-separated content types the key may touch (default: all).")
@site_option
@handle_errors
def keys_create(
    name: str, scopes: str, expires: str | None, with_secret: bool, types: str | None, site_path: str | None
) -> None:
    """Create a key and print it once."""
    from datetime import UTC

    from cms.content.model import to_datetime
    from cms.errors import BadRequest

    expires_at = None
    if expires:
        expires_at = to_datetime(expires, UTC)
        if expires_at is None:
            raise BadRequest(f"--expires {expires!r} is not an ISO 8601 date-time")
    issued = _keys(site_path).create(
        name,
        scopes.split(","),
        expires_at=expires_at,
        with_secret=with_secret,
        types=[t.strip() for t in types.split(",") if t.strip()] if types else None,
    )
    click.echo(f"id:     {issued.key.id}")
    click.echo(f"scopes: {', '.join(sorted(issued.key.scopes))}")
    click.echo(f"key:    {issued.token}")
    if issued.secret:
        click.echo(f"secret: {issued.secret}")
    click.echo("Store the key now: it is shown only once.", err=True)


@keys.command("list")
@site_option
@handle_errors
def keys_list(site_path: str | None) -> None:
    """List keys (never their secrets)."""
    rows = _keys(site_path).list()
    if not rows:
        click.echo("no keys; create one with `cms keys create --name NAME --scopes read`")
        return
    click.echo(f"{'id':<14}{'name':<24}{'scopes':<28}{'state':<10}{'expires':<22}last used")
    for key in rows:
        data = key.as_dict()
        state = "enabled" if key.enabled else "disabled"
        click.echo(
            f"{key.id:<14}{key.name[:22]:<24}{','.join(data['scopes']):<28}{state:<10}"
            f"{data['expires_at'] or '-':<22}{data['last_used_at'] or '-'}"
        )


@keys.command("revoke")
@click.argument("key_id")
@site_option
@handle_errors
def keys_revoke(key_id: str, site_path: str | None) -> None:
    """Delete a key for good."""
    _keys(site_path).revoke(key_id)
    click.echo(f"revoked {key_id}")


@keys.command("show")
@click.argument("key_id")
@site_option
@handle_errors
def keys_show(key_id: str, site_path: str | None) -> None:
    """Show one key's settings (never its secret)."""
    for name, value in _keys(site_path).get(key_id).as_dict().items():
        click.echo(f"{name + ':':<14}{value if value is not None else '-'}")


@keys.command("disable")
@click.argument("key_id")
@site_option
@handle_errors
def keys_disable(key_id: str, site_path: str | None) -> None:
    """Disable a key (requests with it get 401 KEY_DISABLED) until enabled again."""
    _keys(site_path).set_enabled(key_id, False)
    click.echo(f"disabled {key_id}")


@keys.command("enable")
@click.argument("key_id")
@site_option
@handle_errors
def keys_enable(key_id: str, site_path: str | None) -> None:
    """Enable a disabled key."""
    _keys(site_path).set_enabled(key_id, True)
    click.echo(f"enabled {key_id}")


@keys.command("rotate")
@click.argument("key_id")
@site_option
@handle_errors
def keys_rotate(key_id: str, site_path: str | None) -> None:
    """Issue a new token for a key; the old token stops working at once."""
    issued = _keys(site_path).rotate(key_id)
    click.echo(f"key:    {issued.token}")
    if issued.secret:
        click.echo(f"secret: {issued.secret}")
    click.echo("Store the key now: it is shown only once.", err=True)


@main.command(name="build")
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

    site = _site(site_path)
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
    _deliver_events(site, result.events)
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


def _webhooks(site: Site) -> Any:
    from cms.events.webhooks import Webhooks
    from cms.state import State

    return Webhooks(site, State(site.state_dir))


def _deliver_events(site: Site, events: list[Any]) -> None:
    """Put a command's events in the outbox and try to send them now (a server retries the rest)."""
    from cms.events.webhooks import Deliverer

    hooks = _webhooks(site)
    queued = sum(len(hooks.enqueue(e)) for e in events)
    if queued:
        deliverer = Deliverer(hooks)
        try:
            deliverer.flush(timeout=site.delivery.timeout + 5)
        finally:
            deliverer.stop()
        click.echo(f"webhooks: {queued} delivery(ies) queued, {hooks.pending_count()} still pending")


@main.group()
def webhooks() -> None:
    """List, test and inspect webhook subscriptions and their deliveries."""


@webhooks.command("list")
@site_option
@handle_errors
def webhooks_list(site_path: str | None) -> None:
    """List subscriptions (from cms.toml and the API)."""
    hooks = _webhooks(_site(site_path)).list()
    if not hooks:
        click.echo("no webhooks; declare [[webhooks]] in cms.toml or POST /api/v1/webhooks")
    for hook in hooks:
        state = "enabled" if hook.enabled else f"disabled ({hook.disabled_reason or 'by hand'})"
        failing = f", failing since {hook.failing_since}" if hook.failing_since else ""
        click.echo(
            f"{hook.id:<22}{hook.name[:20]:<22}{state}{failing}\n{'':<22}{hook.url}  events: {', '.join(hook.events)}"
        )


@webhooks.command("test")
@click.argument("webhook_id")
@site_option
@handle_errors
def webhooks_test(webhook_id: str, site_path: str | None) -> None:
    """Send a `webhook.test` event to one subscription now and show the outcome."""
    from cms.events.bus import Event
    from cms.events.webhooks import Deliverer

    site = _site(site_path)
    hooks = _webhooks(site)
    hook = hooks.get(webhook_id)
    hooks.enqueue(Event("webhook.test", {"webhook": {"id": hook.id, "name": hook.name}}, source="cli"), only=hook.id)
    deliverer = Deliverer(hooks)
    try:
        deliverer.flush(timeout=site.delivery.timeout + 5)
    finally:
        deliverer.stop()
    rows, _ = hooks.deliveries(hook.id, limit=1)
    last = rows[0]["log"][-1] if rows and rows[0]["log"] else {}
    click.echo(
        f"{rows[0]['status'] if rows else 'not sent'}: HTTP {last.get('status') or '-'} "
        f"in {last.get('latency_ms') or '-'} ms {last.get('error') or ''}"
    )


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 500))
@site_option
@handle_errors
def webhooks_deliveries(webhook_id: str, limit: int, site_path: str | None) -> None:
    """The delivery log of one subscription, newest first, with every attempt."""
    rows, total = _webhooks(_site(site_path)).deliveries(webhook_id, limit=limit)
    click.echo(f"{total} delivery(ies)")
    for row in rows:
        click.echo(
            f"#{row['id']:<6}{row['event']:<22}{row['status']:<10}attempts={row['attempts']} "
            f"created={row['created_at']}"
        )
        for attempt in row["log"]:
            click.echo(
                f"        {attempt['at']}  HTTP {attempt['status'] or '-'}  {attempt['latency_ms']} ms  "
                f"{attempt['error'] or ''}"
            )


@webhooks.command("redeliver")
@click.argument("webhook_id")
@click.argument("delivery_id", type=int)
@site_option
@handle_errors
def webhooks_redeliver(webhook_id: str, delivery_id: int, site_path: str | None) -> None:
    """Queue one delivery again (sent by a running server or `cms webhooks flush`)."""
    _webhooks(_site(site_path)).redeliver(webhook_id, delivery_id)
    click.echo(f"delivery {delivery_id} queued again")


@webhooks.command("flush")
@click.option("--timeout", default=60.0, show_default=True, type=float, help="Seconds to keep sending.")
@site_option
@handle_errors
def webhooks_flush(timeout: float, site_path: str | None) -> None:
    """Send every delivery that is due now (e.g. after a crash, with no server running)."""
    from cms.events.webhooks import Deliverer

    hooks = _webhooks(_site(site_path))
    deliverer = Deliverer(hooks)
    try:
        started = deliverer.flush(timeout=timeout)
    finally:
        deliverer.stop()
    click.echo(f"{started} attempt(s) made; {hooks.pending_count()} delivery(ies) still pending")


@webhooks.command("secret")
@click.argument("webhook_id")
@site_option
@handle_errors
def webhooks_secret(webhook_id: str, site_path: str | None) -> None:
    """Print a subscription's signing secret (for webhooks declared in cms.toml without one)."""
    click.echo(_webhooks(_site(site_path)).secret_of(webhook_id))


@main.group()
def state() -> None:
    """Back up and restore the site's local state in .cms/ (keys, webhooks, outbox, audit log)."""


@state.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@site_option
@handle_errors
def state_backup(file: str, site_path: str | None) -> None:
    """Write a consistent copy of every state database to FILE (a zip); safe while `cms serve` runs."""
    from cms.backup import backup

    manifest = backup(_site(site_path), Path(file))
    for entry in manifest.files:
        click.echo(f"{entry.name:<16}{entry.bytes:>12,} bytes")
    click.echo(f"backed up {len(manifest.files)} file(s) to {file} (format {manifest.format_version})")


@state.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@site_option
@handle_errors
def state_restore(file: str, site_path: str | None) -> None:
    """Replace .cms/ state with the backup FILE (old state kept in .cms/replaced-<time>/); stop the server first."""
    from cms.backup import restore

    done = restore(_site(site_path), Path(file))
    for entry in done.manifest.files:
        click.echo(f"restored {entry.name}")
    if done.replaced:
        click.echo(f"the state it replaced is in {done.replaced}")
    click.echo(f"restored the state of {done.manifest.created_at} (cms {done.manifest.cms_version})")


@main.group()
def media() -> None:
    """The media library in uploads/: rebuild derivatives and sidecars."""


@media.command("rebuild")
@site_option
@handle_errors
def media_rebuild(site_path: str | None) -> None:
    """Regenerate every image's AVIF/WebP files, take in images dropped into uploads/, prune leftovers."""
    from cms.events.bus import Event
    from cms.media import MediaLibrary

    site = _site(site_path)
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
    _deliver_events(
        site, [Event("media.uploaded", {"media": i.as_dict(base)}, source="cli", key=i.id) for i in report.ingested]
    )
    if report.failed:
        sys.exit(EXIT_PROBLEMS)
