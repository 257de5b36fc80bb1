"""The writer process of the kill -9 test (reliability plan T1).

    python -m tests.reliability.writer_child SITE_DIR LOG_PATH SEED

Loops over the real `Store` of the site in SITE_DIR: create, update one field (PATCH), slug
rename (aliases), permanent delete, publish/unpublish and `_type.yaml` edits (Store.save_type).
Before each operation it appends `begin <op> <rel path>...` to LOG_PATH, and after the operation
returned, one `acked <rel path> <sha256 of the file | DELETED>` per touched path; every line is
written with one write() and fsync'd, so the parent can trust what the log says after SIGKILL.
It prints `ready` on stdout once the index is loaded: the parent starts its kill timer then.

Two environment variables turn it into a fault-injection tool for the deterministic tests:

- `CMS_CHILD_SCRIPT`: a JSON list of operations (`{"op": "rename", "path": ..., "slug": ...}`)
  run once, in order, instead of the random loop;
- `CMS_CRASH_AT`: `before:<name>` or `after:<name>`,
  with name one of `replace`, `link`, `unlink` (os) or `_exchange`, `fsync_folder` (cms.content.write):
  the first such call of the script's
  operations sends SIGKILL to this very process before or after the real call;
- `CMS_FIXED_CLOCK`: an ISO datetime used as the store's clock, and new ids from a counter, so
  that two runs of one script write byte-identical post-images.

Any exception from the store is a bug in this setting (a single writer doing valid operations):
the child dies with the traceback on stderr and a non-zero exit code, which the parent reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sys
import textwrap
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

MAX_OPS = 5000  # the parent kills long before; the bound only matters if the parent died
MIN_POSTS, MAX_POSTS = 4, 14
DELETED = "DELETED"

# Titles mix plain words with strings YAML 1.1 would misread and non-ASCII text.
WORDS = (
    "espresso",
    "crema",
    "grind",
    "bloom",
    "roast",
    "yes",
    "no",
    "on",
    "null",
    "1:30",
    "0x1F",
    "2026-01-01",
    "café",
    "Straße",
    "中文",
    "🙂",
    "#hash",
    "a: b",
    "- dash",
)
SLUG_WORDS = ("alpha", "bravo", "crema", "delta", "ember", "flat", "gold", "honey", "iris", "jade")


# -- the seed site -----------------------------------------------------------------------------

SITE_FILES = {
    "cms.toml": """
        [site]
        title = "Crash test"
        base_url = "https://crash.example"
        timezone = "UTC"
    """,
    "content/posts/first-light.md": """
        ---
        id: 01K5DR7YJ0PYYC9CRZZPK9PM2A
        title: First light
        summary: The first roast of the season.
        date: 2025-09-18T08:30:00+02:00
        tags:
          - roast
        ---
        The first roast of the season went well.
    """,
    "content/posts/cold-brew.md": """
        ---
        id: 01K5DR7YJ0PYYC9CRZZPK9PM2B
        title: "Cold brew: no fuss"   # a trailing comment
        draft: true
        ---
        Coarse grind, cold water, twelve hours.
    """,
    "content/posts/water.md": """
        ---
        id: 01K5DR7YJ0PYYC9CRZZPK9PM2C
        title: Water chemistry
        date: 2025-10-01
        categories: [brewing]
        ---
        Hardness matters more than you think.
    """,
    "content/posts/grinders.md": """
        ---
        id: 01K5DR7YJ0PYYC9CRZZPK9PM2D
        title: Grinders
        ---
        Burrs, not blades.
    """,
    "content/pages/about.md": """
        ---
        title: About
        ---
        A small roastery.
    """,
    "content/categories/brewing.md": """
        ---
        name: Brewing
        ---
    """,
    "content/products/_type.yaml": """
        # Coffees sold in the shop.
        name: products
        label: Products
        description: Coffees from the shop.
        fields:
          - name: price
            type: number
            required: true
            min: 0
          - name: sku
            type: text
            required: true
            unique: true
          - name: in_stock
            type: boolean
            default: true
    """,
    "content/products/kenya.md": """
        ---
        id: 01K5DR7YJ0PYYC9CRZZPK9PM3A
        title: Kenya Kiambu AA
        price: 14.5
        sku: KEN-AA
        in_stock: true
        ---
        Blackcurrant and tomato.
    """,
    "content/products/guji.md": """
        ---
        id: 01K5DR7YJ0PYYC9CRZZPK9PM3B
        title: Ethiopia Guji
        price: 13
        sku: ETH-GUJI
        ---
        Peach and jasmine.
    """,
}


def build_site(root: Path) -> None:
    """Write the small seed site the writer works on into `root`."""
    for rel, text in SITE_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")


def sha_of(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return DELETED


# -- the log -----------------------------------------------------------------------------------


class Log:
    """Append-only, one write() + fsync per line: a line in the file happened."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def line(self, text: str) -> None:
        os.write(self.fd, (text + "\n").encode())
        os.fsync(self.fd)


# -- operations --------------------------------------------------------------------------------


class Writer:
    def __init__(self, site_dir: Path, log_path: Path, clock: Callable[[], datetime] | None = None) -> None:
        from cms.config import Site
        from cms.content.index import Index
        from cms.content.store import Store

        self.site = Site.load(site_dir)
        index = Index.load(self.site, fill_search=False)
        self.store = Store(self.site, index, clock=clock) if clock else Store(self.site, index)
        self.content = self.site.content_dir
        self.log = Log(log_path)

    def _doc(self, rel: str) -> Any:
        doc = self.store.index.by_path_or_none(rel)
        if doc is None:
            raise RuntimeError(f"{rel} is not in the writer's index; problems: {self.store.index.problems}")
        return doc

    def _begin(self, op: str, *rels: str) -> None:
        self.log.line(f"begin {op} {' '.join(rels)}")

    def _ack(self, *rels: str) -> None:
        for rel in rels:
            self.log.line(f"acked {rel} {sha_of(self.content / rel)}")

    def create(self, type_name: str, slug: str, values: dict[str, Any]) -> None:
        rel = f"{type_name}/{slug}.md"
        self._begin("create", rel)
        self.store.create(type_name, {**values, "slug": slug})
        self._ack(rel)

    def update(self, rel: str, values: dict[str, Any]) -> None:
        doc = self._doc(rel)
        self._begin("update", rel)
        self.store.update(doc, values)
        self._ack(rel)

    def rename(self, rel: str, slug: str) -> None:
        doc = self._doc(rel)
        new_rel = f"{doc.type}/{slug}.md"
        self._begin("rename", rel, new_rel)
        self.store.rename(doc, slug)
        self._ack(rel, new_rel)

    def delete(self, rel: str) -> None:
        doc = self._doc(rel)
        self._begin("delete", rel)
        self.store.delete(doc)
        self._ack(rel)

    def set_status(self, rel: str, status: str) -> None:
        doc = self._doc(rel)
        self._begin(f"status:{status}", rel)
        self.store.set_status(doc, status)
        self._ack(rel)

    def save_type(self, type_name: str, description: str) -> None:
        rel = f"{type_name}/_type.yaml"
        raw = yaml.safe_load((self.content / rel).read_text(encoding="utf-8"))
        raw["description"] = description
        self._begin("type", rel)
        self.store.save_type(type_name, raw, creating=False)
        self._ack(rel)

    def run(self, step: dict[str, Any]) -> None:
        args = {k: v for k, v in step.items() if k != "op"}
        getattr(self, step["op"])(**args)


# -- the random loop ---------------------------------------------------------------------------


def _title(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 4)))


def _free_slug(writer: Writer, rng: random.Random, type_name: str) -> str:
    taken = {s for (t, s, _lang) in writer.store.index.by_slug if t == type_name}
    while True:
        slug = f"{rng.choice(SLUG_WORDS)}-{rng.choice(SLUG_WORDS)}-{rng.randrange(1000)}"
        if slug not in taken and not (writer.content / type_name / f"{slug}.md").exists():
            return slug


def random_step(writer: Writer, rng: random.Random) -> dict[str, Any]:
    """One valid operation, chosen from the current index."""
    docs = sorted(writer.store.index.docs.values(), key=lambda d: d.path)
    posts = [d for d in docs if d.type == "posts"]
    products = [d for d in docs if d.type == "products"]
    roll = rng.random()
    if len(posts) < MIN_POSTS or (roll < 0.18 and len(posts) < MAX_POSTS):
        body = f"Body {rng.randrange(10**6)}.\n\nSecond paragraph: {_title(rng)}\n"
        values = {"title": _title(rng), "content": body, "tags": [rng.choice(SLUG_WORDS)]}
        return {"op": "create", "type_name": "posts", "slug": _free_slug(writer, rng, "posts"), "values": values}
    if roll < 0.30 and len(posts) > MIN_POSTS:
        return {"op": "delete", "rel": rng.choice(posts).path}
    if roll < 0.45:
        return {"op": "rename", "rel": rng.choice(posts).path, "slug": _free_slug(writer, rng, "posts")}
    if roll < 0.62:
        doc = rng.choice(posts)
        return {"op": "set_status", "rel": doc.path, "status": "published" if doc.meta.get("draft") else "draft"}
    if roll < 0.70:
        return {"op": "save_type", "type_name": "products", "description": f"Coffees: {_title(rng)}"}
    if roll < 0.80 and products:
        doc = rng.choice(products)
        field = rng.choice(("price", "in_stock", "title"))
        value = {"price": round(rng.uniform(1, 50), 2), "in_stock": rng.random() < 0.5, "title": _title(rng)}[field]
        return {"op": "update", "rel": doc.path, "values": {field: value}}
    doc = rng.choice(posts)
    field = rng.choice(("title", "excerpt", "tags"))
    value = {"title": _title(rng), "excerpt": _title(rng), "tags": [rng.choice(SLUG_WORDS)]}[field]
    return {"op": "update", "rel": doc.path, "values": {field: value}}


# -- fault injection ---------------------------------------------------------------------------


def install_crash(spec: str) -> None:
    """Make the first call of one function SIGKILL this process, before or after the real call."""
    when, _, name = spec.partition(":")
    if when not in ("before", "after") or not name:
        raise SystemExit(f"bad CMS_CRASH_AT {spec!r}")
    if name in ("fsync_folder", "_exchange"):
        import cms.content.write as owner
    else:
        owner = os  # type: ignore[assignment]
    real = getattr(owner, name)

    def crashing(*args: Any, **kwargs: Any) -> Any:
        if when == "before":
            os.kill(os.getpid(), signal.SIGKILL)
        result = real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(owner, name, crashing)


def warm_up() -> None:
    """Run the writer's pure code paths once, in memory: the first real write is not 20 ms slower."""
    from cms.content.frontmatter import render_document, update_document
    from cms.content.parse import parse_document

    data = render_document({"id": "x", "title": "yes", "tags": ["a"], "date": datetime.now(UTC)}, "Body.\n")
    changed = update_document(data.decode(), {"title": "no", "summary": "1:30"})
    parse_document(changed, "posts/warm-up.md")


def main(argv: list[str]) -> int:
    site_dir, log_path, seed = Path(argv[0]), Path(argv[1]), int(argv[2])
    fixed = os.environ.get("CMS_FIXED_CLOCK")
    clock = (lambda: datetime.fromisoformat(fixed).astimezone(UTC)) if fixed else None
    if fixed:  # byte-identical post-images: new documents get predictable ids too
        import itertools

        import cms.content.store.documents

        counter = itertools.count(1)
        cms.content.store.documents.new_id = lambda *_: f"01K5DR7YJ0PYYC9CRZZPK9P{next(counter):03d}"
    writer = Writer(site_dir, log_path, clock)
    warm_up()
    script = os.environ.get("CMS_CHILD_SCRIPT")
    crash = os.environ.get("CMS_CRASH_AT")
    print("ready", flush=True)
    if script is not None:
        if crash:
            install_crash(crash)
        for step in json.loads(script):
            writer.run(step)
        return 0
    rng = random.Random(seed)
    for _ in range(MAX_OPS):
        writer.run(random_step(writer, rng))
    return 0


if __name__ == "__main__":
    if __package__ in (None, ""):  # run as a file: make the repository importable
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    sys.exit(main(sys.argv[1:]))
