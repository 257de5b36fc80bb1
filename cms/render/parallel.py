"""Rendering planned outputs: one by one in this process, or in worker processes (`cms.workers`).

A plain `cms build` forks renderers that inherit the plan (Markdown, highlighting, templates and
writes all in parallel); a server's preview, which has threads and so must not fork, renders the
Markdown in fork-server workers and the pages here. A build can be stopped between two outputs.
"""

from __future__ import annotations

import gc
import os
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, as_completed
from concurrent.futures import wait as wait_for
from pathlib import Path

from jinja2 import Environment
from markupsafe import Markup

from cms import workers as processes
from cms.content.markdown import render_markdown
from cms.errors import CMSError
from cms.render.output import Output
from cms.render.plan import Planned
from cms.render.theme import ThemeError, render_template
from cms.render.views import SiteView, render_body

PARALLEL_THRESHOLD = 400  # below this many bodies to render, a process pool costs more than it saves


class BuildStopped(Exception):
    """A build cut short by its `stop` callable. Like a crash, it leaves the outputs it was about to
    rewrite listed as pending in the manifest's folder, so the next build renders them again."""


def check_stop(stop: Callable[[], bool] | None) -> None:
    if stop is not None and stop():
        raise BuildStopped("the build was stopped")


def render_one(s: SiteView, env: Environment, output: Output, key: str, item: Planned) -> tuple[str, str]:
    """Render and write one output: ("written" | "unchanged" | "error", the error's message)."""
    try:
        data = (
            item.data() if item.data is not None else render_template(env, item.template or "", item.context()).encode()
        )
    except (ThemeError, CMSError) as exc:
        return "error", str(exc)
    before = len(output.written)
    try:
        output.write(item.path, data)
    except (CMSError, OSError) as exc:  # e.g. a symlink or a file where a folder must go
        return "error", f"{key}: {exc}"
    return ("written" if len(output.written) > before else "unchanged"), ""


# What forked render workers inherit: the plan and everything it refers to, shared copy-on-write
# (contexts are closures over the index, so they cannot be pickled; a fork needs no pickling).
_FORKED: tuple[SiteView, Environment, Path, list[tuple[str, Planned]]] | None = None


def _render_chunk(indices: list[int]) -> list[tuple[int, str, str, str]]:
    """In a forked worker: render and write these outputs of the plan; (index, status, message, key)."""
    assert _FORKED is not None
    s, env, root, todo = _FORKED
    output = Output(root)
    results = []
    for i in indices:
        key, item = todo[i]
        status, message = render_one(s, env, output, key, item)
        results.append((i, status, message, key))
    return results


def render_forked(
    s: SiteView,
    env: Environment,
    output: Output,
    todo: list[tuple[str, Planned]],
    n: int,
    progress: Callable[[int, int], None] | None,
) -> list[tuple[str, str]]:
    """Render and write `todo` in `n` forked processes (Markdown, highlighting, templates and writes
    all in parallel); outcomes in plan order, so the build's report does not depend on timing."""
    global _FORKED
    outcomes: list[tuple[str, str]] = [("error", "")] * len(todo)
    wanted = []
    for i, (key, _) in enumerate(todo):
        if key in output.seen_keys:  # two outputs of the plan want one path: a bug, reported like Output.write
            outcomes[i] = ("error", f"two outputs of this build want the same path: {key}")
        else:
            output.seen_keys.add(key)
            wanted.append(i)
    batches = [wanted[i :: n * 8] for i in range(n * 8)]
    for name in env.list_templates(filter_func=lambda name: name.endswith((".html", ".xml"))):
        env.get_template(name)  # compiled once here, not once per worker
    _FORKED = (s, env, output.root, todo)
    # Workers share the parent's objects copy-on-write: keep their collector off those pages (the
    # plan made since `build` froze the older objects; `build` unfreezes all when it ends).
    gc.freeze()
    try:
        with processes.pool(n, inherit=True) as pool:
            done = 0
            for future in as_completed([pool.submit(_render_chunk, batch) for batch in batches if batch]):
                for i, status, message, key in future.result():
                    outcomes[i] = (status, message)
                    if status == "written":
                        output.written.append(key)
                    elif status == "unchanged":
                        output.unchanged.append(key)
                    done += 1
                if progress:
                    progress(done, len(todo))
    finally:
        _FORKED = None
    order = {key: i for i, (key, _) in enumerate(todo)}
    output.written.sort(key=order.__getitem__)
    output.unchanged.sort(key=lambda key: order.get(key, -1))  # kept outputs (not in todo) first, as before
    return outcomes


def _render_many(items: list[tuple[str, str]], raw_html: str, highlight: bool, engine: str) -> list[tuple[str, str]]:
    """In a fork-server worker: the HTML of these (document id, Markdown body) pairs."""
    return [
        (doc_id, render_markdown(body, raw_html=raw_html, highlight=highlight, engine=engine)) for doc_id, body in items
    ]


def prerender(s: SiteView, items: list[Planned], workers: int | None, stop: Callable[[], bool] | None = None) -> None:
    """Render the Markdown of every document whose page or feed entry will be rendered, in parallel.

    With `stop`, chunks not yet started are cancelled once it says yes, and the ones running are
    waited for (small chunks: a fraction of a second): a worker is never killed in the middle of
    sending its result, which would leave the pool reading half a message, and its process exit waiting."""
    wanted = {doc_id: s.index.docs[doc_id] for item in items for doc_id in item.needs_html}
    site = s.site
    pending = [(d.id, d.body) for d in wanted.values() if d.id not in s.html]
    if len(pending) >= PARALLEL_THRESHOLD and (workers or os.cpu_count() or 1) > 1:
        n = workers or min(4, os.cpu_count() or 1)
        chunks = [pending[i :: n * 8] for i in range(n * 8)]
        options = (site.render.raw_html, site.render.highlight, site.render.engine)
        with processes.pool(n, preload=["cms.render.parallel"]) as pool:  # (pickled bodies in, HTML out)
            running = {pool.submit(_render_many, chunk, *options) for chunk in chunks}
            while running:
                done, running = wait_for(running, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    for doc_id, html in future.result():
                        s.html[doc_id] = Markup(html)  # rendered under the raw-HTML policy in the worker
                if running and stop is not None and stop():
                    for future in running:
                        future.cancel()
                    break
        check_stop(stop)
    else:
        for doc_id, _ in pending:
            s.html[doc_id] = render_body(s.index.docs[doc_id], site)
