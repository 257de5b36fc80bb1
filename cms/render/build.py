"""`build(site, index, ...)`: one entry point for full and incremental static builds.

Plan -> sign -> render what changed -> write -> remove what is gone -> report the change set.
Every planned output carries a signature: a hash of everything its page shows (the documents'
ETags, neighbours, terms, templates, settings). The manifest in `.cms/` keeps the signatures of
the last build, so a rebuild renders only outputs whose signature changed: an edited post
re-renders its page, the lists and feeds it appears on, the sitemap and the search index, and
nothing else. Signatures come from data, never from clocks, so the same input gives
byte-identical output.

The modules of a build, in the order data flows through them: `signature` (hashes), `views`
(`SiteView`: what templates see), `plan` (outputs, the kept content plan), `feeds` and `pages`
(which outputs the site has), `parallel` (rendering), `manifest` (what the last build left).
What one build may leave for the next is only what the caller hands in: a `BuildCache`.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from jinja2 import Environment

from cms import workers as processes
from cms.config import Site
from cms.content.index import Index
from cms.content.model import Status
from cms.errors import CMSError
from cms.events.bus import Event, document_events, event_id_for, kind_of
from cms.render.manifest import Manifest
from cms.render.output import Output
from cms.render.pages import plan_content, plan_files
from cms.render.parallel import PARALLEL_THRESHOLD, BuildStopped, check_stop, prerender, render_forked, render_one
from cms.render.plan import ContentPlan, KeptPlan, index_terms, next_moment
from cms.render.signature import Signatures
from cms.render.theme import make_environment
from cms.render.views import KnownRelated, SiteView

__all__ = ["PARALLEL_THRESHOLD", "BuildCache", "BuildResult", "BuildStopped", "build"]

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class BuildResult:
    """What one build wrote, left alone and removed (output files), its errors, and its change set."""

    written: list[str]
    unchanged: list[str]
    removed: list[str]
    errors: list[str]
    seconds: float
    changed_urls: list[str]
    events: list[Event]
    plan_reused: bool = False  # the cache's last content plan was brought up to date, not made anew

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        return (
            f"{len(self.written)} written, {len(self.unchanged)} unchanged, {len(self.removed)} removed"
            f"{f', {len(self.errors)} error(s)' if self.errors else ''} in {self.seconds:.2f} s"
        )


@dataclass
class BuildCache:
    """What a caller's builds carry from one to the next, so a rebuild after one edit costs a few
    milliseconds: a `cms build` makes a fresh one, the preview keeps one across its rebuilds. Every
    part gives exactly what recomputing it would (tests/render/test_replan.py checks the output
    against clean builds), so a cache changes how fast a build is, never what it writes. One build
    at a time uses a cache (the preview builds in one thread)."""

    signatures: Signatures = field(default_factory=Signatures)  # signed parts -> signature
    related: KnownRelated = field(default_factory=dict)  # each post's related posts and their inputs
    plan: KeptPlan | None = None  # the last content plan, brought up to date when no edit moved anything


def _content_plan(
    site: Site, index: Index, env: Environment, cache: BuildCache, *, now: datetime, drafts: bool, base_url: str
) -> tuple[SiteView, ContentPlan, bool]:
    """The content plan of this build: the cache's last one, with the outputs showing the edited
    documents planned again when no edit moved anything (the preview's rebuild after a save), else
    a new one; and whether it was the kept one."""
    # What the plan is made from, taken first: an edit the index takes while planning shows as a
    # change to the next build instead of being taken for planned.
    docs, terms, types = dict(index.docs), index_terms(index), dict(index.types)
    kept, cache.plan = cache.plan, None  # (a plan that failed half-way through an update is not kept)
    params = (drafts, base_url)
    if kept is not None and kept.brought_up_to_date(index, site, params, docs, terms, types, now):
        s, content, reused = kept.s, kept.content, True
    else:
        s = SiteView(site, index, env, now=now, drafts=drafts, base_url=base_url, related=cache.related)
        content, reused = plan_content(s, cache.signatures), False
    cache.plan = KeptPlan(index, site, params, docs, terms, types, next_moment(docs, now), s, content)
    return s, content, reused


def _frozen_heap(func: F) -> F:
    """Run `func` with what exists before it (the index above all) out of the cycle collector's
    sight: it is not the build's garbage, a full collection over a 10,000-post index pauses for a
    tenth of a second, and a build allocates enough to set off several."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        gc.freeze()
        try:
            return func(*args, **kwargs)
        finally:
            gc.unfreeze()

    return cast(F, run)


@_frozen_heap
def build(
    site: Site,
    index: Index,
    *,
    out: Path | None = None,
    drafts: bool = False,
    base_url: str | None = None,
    clean: bool = False,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
    workers: int | None = None,
    stop: Callable[[], bool] | None = None,
    cache: BuildCache | None = None,
) -> BuildResult:
    """Build the site into `out` (default: paths.output), re-rendering only what changed.

    `stop` is asked between outputs; when it says yes, BuildStopped is raised (a server shutting down).
    `cache` carries what this build learns to the caller's next one (default: a fresh one)."""
    started = time.perf_counter()
    now = now or datetime.now(UTC)
    cache = cache if cache is not None else BuildCache()
    out = (out or site.output_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(site, out)
    old_outputs: dict[str, str] = {} if clean else manifest.trusted_outputs()
    old_docs = manifest.docs  # --clean re-renders, but changes are still changes
    env = make_environment(site)
    s, content, reused = _content_plan(
        site, index, env, cache, now=now, drafts=drafts, base_url=base_url or site.site.base_url
    )
    output = Output(out)
    planned = content.items + plan_files(s, content)

    errors: list[str] = list(s.problems)

    todo = []
    for item in planned:
        try:
            key = output.key(item.path)
        except CMSError as exc:  # a path that would leave the output folder or pass a symlink
            errors.append(f"{item.path}: {exc}")
            continue
        if old_outputs.get(key) == item.signature and output.exists(key):
            output.keep(key)
        else:
            todo.append((key, item))
    manifest.mark_pending({key for key, _ in todo})
    signatures: dict[str, str] = {}
    changed_urls: list[str] = []
    n = workers or min(4, os.cpu_count() or 1)
    # The rule of cms.workers: fork the renderers directly only from a single-threaded process (`cms
    # build`); a server's preview renders the Markdown in fork-server workers and the pages here.
    forked = len(todo) >= PARALLEL_THRESHOLD and n > 1 and processes.can_fork()
    outcomes: Iterable[tuple[str, str]]
    if forked:
        outcomes = render_forked(s, env, output, todo, n, progress)
    else:
        check_stop(stop)
        prerender(s, [item for _, item in todo], workers, stop)
        outcomes = (render_one(s, env, output, key, item) for key, item in todo)
    for done, ((key, item), (status, message)) in enumerate(zip(todo, outcomes, strict=True), 1):
        if status == "error":
            errors.append(message)
            continue
        signatures[key] = item.signature
        if status == "written":
            changed_urls.append(s.base_url + "/" + key.removesuffix("index.html"))
        if progress and not forked:  # (the forked workers report their own progress)
            progress(done, len(todo))
        check_stop(stop)
    for key in output.unchanged:
        signatures.setdefault(key, old_outputs.get(key, ""))
    output.remove_stale(set(old_outputs) | manifest.pending | (_existing_files(out) if clean else set()))
    changed_urls += [s.base_url + "/" + k.removesuffix("index.html") for k in output.removed]

    docs_now = {d.id: {"etag": d.etag, "type": d.type, "status": d.status_at(now).value} for d in s.docs}
    events = _change_events(old_docs, docs_now, index, now, s)
    seconds = time.perf_counter() - started
    events.append(
        Event(
            "build.completed",
            {
                "build": {
                    "written": len(output.written),
                    "unchanged": len(output.unchanged),
                    "removed": len(output.removed),
                    "errors": len(errors),
                    "seconds": round(seconds, 3),
                    "changed_urls": sorted(set(changed_urls)),
                }
            },
            source="build",
        )
    )
    manifest.save(out, output.written, output.removed, signatures, docs_now)
    return BuildResult(
        output.written, output.unchanged, output.removed, errors, seconds, sorted(set(changed_urls)), events, reused
    )


def _existing_files(out: Path) -> set[str]:
    return {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() or p.is_symlink()}


def _change_events(
    before: dict[str, Any] | None, now_docs: dict[str, Any], index: Index, now: datetime, s: SiteView
) -> list[Event]:
    """Documents published, updated or removed since the previous build (none on a first build)."""
    if before is None:
        return []
    events: list[Event] = []
    url = lambda d: s.base_url + s.url_of(d)  # noqa: E731
    for doc_id, info in sorted(now_docs.items()):
        doc = index.docs[doc_id]
        old = before.get(doc_id)
        if old is None:
            events += [
                e for e in document_events(None, doc, now, source="build", url=url) if e.name.endswith(".published")
            ]
        elif old["etag"] != info["etag"]:
            # Only the new version is at hand; the id is made from both ETags, as the store and
            # the watcher make it, so a receiver that got this change from them deduplicates it.
            events += [
                dataclasses.replace(e, id=event_id_for(doc_id, info["etag"], old["etag"], e.name))
                for e in document_events(doc, doc, now, source="build", url=url)
            ]
    for doc_id, old in sorted(before.items()):
        if doc_id not in now_docs:
            gone = index.docs.get(doc_id)
            kind = kind_of(old.get("type", ""))
            data = {
                kind: {
                    "id": doc_id,
                    "type": old.get("type"),
                    "title": gone.title if gone else None,
                    "slug": gone.slug if gone else None,
                    "status": gone.status_at(now).value if gone else "deleted",
                }
            }
            # Still a file, only no longer public (draft, scheduled again, expired): unpublished.
            # Trashed or gone: deleted.
            status = gone.status_at(now) if gone else None
            action = "unpublished" if status in (Status.DRAFT, Status.SCHEDULED, Status.EXPIRED) else "deleted"
            name = f"{kind}.{action}"
            new_etag = gone.etag if gone and action == "unpublished" else None
            events.append(
                Event(name, data, id=event_id_for(doc_id, new_etag, old.get("etag"), name), source="build", key=doc_id)
            )
    return events
