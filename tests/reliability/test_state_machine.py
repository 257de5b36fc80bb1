"""T7: a stateful model of the store, the index and the disk (hypothesis RuleBasedStateMachine).

Each example starts from an empty site in a fresh temp folder. Rules: create, update title,
rename slug, permanent delete, trash, restore, publish, unpublish, hand edit (the file is
rewritten directly, then `index.refresh([rel])` as the watcher would), restart the index
(`Index.load` again, swapped into the store). After every step the model
(id -> (slug, title, status)) must equal the index's view and a fresh parse of the files.

The model predicts slugs on its own: `slugify(title)`, then `-2`, `-3`... for names already
taken (compared casefolded); a rename to a taken slug is a Conflict, to a device name a
BadRequest, and a failed write changes nothing.

CI: max_examples=30 x 30 steps, derandomized (same examples on every run); CMS_STATE_EXAMPLES
raises max_examples (the plan's e2e figure is 200 x 50).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test

from cms.config import Site
from cms.content.index import Index
from cms.content.model import Document
from cms.content.names import slugify
from cms.content.parse import parse_document
from cms.content.store import Store
from cms.errors import BadRequest, Conflict

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("CMS_STATE_EXAMPLES", "30"))
CONFIG = '[site]\ntitle = "Model"\nbase_url = "https://model.example"\ntimezone = "UTC"\n'
DEVICE_NAMES = ("con", "nul", "aux", "prn", "com1", "lpt9")

pytestmark = pytest.mark.timeout(600)

# Titles: letters (any script, astral too), digits, punctuation and spaces; never only spaces.
titles = st.one_of(
    st.text(st.characters(categories=("L", "N", "P", "Zs")), min_size=1, max_size=30),
    st.sampled_from(["yes", "no", "on", "null", "~", "1:30", "0x1F", "2026-01-01", "1e3", "- x", "a: b", "#c"]),
).filter(lambda t: t.strip() != "")
slugs = st.one_of(
    st.from_regex(r"[a-z0-9é中ß]([a-z0-9é中ß-]{0,12}[a-z0-9é中ß])?", fullmatch=True).filter(lambda s: "--" not in s),
    st.sampled_from(DEVICE_NAMES),
)


@dataclass
class Entry:
    slug: str
    title: str
    status: str  # draft, published or trash
    before_trash: str = "draft"


class StoreMachine(RuleBasedStateMachine):
    def __init__(self, base: Path | None = None) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="cms-model-", dir=base))
        (self.root / "cms.toml").write_text(CONFIG, encoding="utf-8")
        (self.root / "content" / "posts").mkdir(parents=True)
        self.site = Site.load(self.root)
        self.store = Store(self.site, Index.load(self.site, background_search=False))
        self.posts = self.site.content_dir / "posts"
        self.model: dict[str, Entry] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    # -- helpers -----------------------------------------------------------------------------
    def _taken(self, but: str | None = None) -> set[str]:
        return {e.slug.casefold() for i, e in self.model.items() if i != but}

    def _pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.model)), label="doc")

    def _doc(self, doc_id: str) -> Document:
        return self.store.index.get(doc_id)

    # -- rules -------------------------------------------------------------------------------
    @rule(title=titles)
    def create(self, title: str) -> None:
        base = slugify(title)
        taken = self._taken()
        slug, n = base, 1
        while slug.casefold() in taken:
            n += 1
            slug = f"{base}-{n}"
        doc = self.store.create("posts", {"title": title, "content": "Body text.\n"})
        assert doc.slug == slug, f"title {title!r}: expected slug {slug!r}, store chose {doc.slug!r}"
        assert doc.id not in self.model
        self.model[doc.id] = Entry(slug, title, "draft")

    @precondition(lambda self: self.model)
    @rule(data=st.data(), title=titles)
    def update_title(self, data: st.DataObject, title: str) -> None:
        doc_id = self._pick(data)
        self.store.update(self._doc(doc_id), {"title": title})
        self.model[doc_id].title = title

    @precondition(lambda self: self.model)
    @rule(data=st.data(), fresh=slugs, clash=st.integers(0, 3))
    def rename(self, data: st.DataObject, fresh: str, clash: int) -> None:
        doc_id = self._pick(data)
        entry = self.model[doc_id]
        others = sorted(e.slug for i, e in self.model.items() if i != doc_id)
        slug = data.draw(st.sampled_from(others), label="taken slug") if others and clash == 0 else fresh
        if slug == entry.slug:
            assert self.store.rename(self._doc(doc_id), slug).slug == slug  # a no-op, answered at once
            return
        if slug in DEVICE_NAMES:
            with pytest.raises(BadRequest):
                self.store.rename(self._doc(doc_id), slug)
        elif slug.casefold() in self._taken(but=doc_id):
            with pytest.raises(Conflict):
                self.store.rename(self._doc(doc_id), slug)
        else:
            doc = self.store.rename(self._doc(doc_id), slug)
            assert f"/posts/{entry.slug}/" in doc.aliases, f"the old URL is not kept in aliases: {doc.aliases}"
            entry.slug = slug

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        doc_id = self._pick(data)
        self.store.delete(self._doc(doc_id))
        del self.model[doc_id]

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def trash(self, data: st.DataObject) -> None:
        doc_id = self._pick(data)
        self.store.set_status(self._doc(doc_id), "trash")
        entry = self.model[doc_id]
        if entry.status != "trash":
            entry.before_trash, entry.status = entry.status, "trash"

    @precondition(lambda self: self.model)
    @rule(data=st.data())
    def restore(self, data: st.DataObject) -> None:
        doc_id = self._pick(data)
        entry = self.model[doc_id]
        if entry.status != "trash":
            with pytest.raises(Conflict):
                self.store.restore(self._doc(doc_id))
            return
        self.store.restore(self._doc(doc_id))
        entry.status = entry.before_trash

    @precondition(lambda self: self.model)
    @rule(data=st.data(), publish=st.booleans())
    def set_status(self, data: st.DataObject, publish: bool) -> None:
        doc_id = self._pick(data)
        self.store.set_status(self._doc(doc_id), "published" if publish else "draft")
        self.model[doc_id].status = "published" if publish else "draft"

    @precondition(lambda self: self.model)
    @rule(data=st.data(), title=titles)
    def hand_edit(self, data: st.DataObject, title: str) -> None:
        """A person changes the title in an editor; the watcher refreshes that path."""
        doc_id = self._pick(data)
        rel = f"posts/{self.model[doc_id].slug}.md"
        path = self.site.content_dir / rel
        text = path.read_text(encoding="utf-8")
        line = "title: " + json.dumps(title, ensure_ascii=False)  # JSON strings are YAML double-quoted scalars
        new, count = re.subn(r"^title:.*$", lambda _: line, text, count=1, flags=re.MULTILINE)
        assert count == 1, f"no title line in {rel}:\n{text}"
        path.write_text(new, encoding="utf-8")
        self.store.index.refresh([rel])
        self.model[doc_id].title = title

    @rule()
    def restart_index(self) -> None:
        self.store.index = Index.load(self.site, background_search=False)

    # -- the invariant -----------------------------------------------------------------------
    @invariant()
    def model_index_and_disk_agree(self) -> None:
        model = {i: (e.slug, e.title, e.status) for i, e in self.model.items()}
        index = self.store.index
        assert not index.problems, f"index problems: {index.problems}"
        view = {d.id: (d.slug, d.title, d.stored_status.value) for d in index.docs.values()}
        assert view == model, _diff("index", view, model)
        disk: dict[str, tuple[str, str, str]] = {}
        names = sorted(p.name for p in self.posts.iterdir())
        assert all(n.endswith(".md") and not n.startswith(".") for n in names), f"stray files: {names}"
        for name in names:
            meta = parse_document((self.posts / name).read_bytes(), f"posts/{name}").meta
            title = meta.get("title")
            assert isinstance(title, str), f"posts/{name}: title reads back as {title!r} ({type(title).__name__})"
            status = meta.get("status")
            if status == "trash":
                state = "trash"
            elif status == "draft" or meta.get("draft") is True:
                state = "draft"
            else:
                state = "published"
            assert meta["id"] not in disk, f"id {meta['id']} on two files"
            disk[str(meta["id"])] = (name.removesuffix(".md"), title, state)
        assert disk == model, _diff("disk", disk, model)
        assert set(index.by_path) == {f"posts/{n}" for n in names}


def _diff(what: str, got: dict[str, tuple[str, str, str]], want: dict[str, tuple[str, str, str]]) -> str:
    lines = [f"{what} != model"]
    for key in sorted(set(got) | set(want)):
        if got.get(key) != want.get(key):
            lines.append(f"  {key}: {what}={got.get(key)!r} model={want.get(key)!r}")
    return "\n".join(lines)


SETTINGS = settings(
    max_examples=EXAMPLES,
    stateful_step_count=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def test_store_index_and_disk_follow_the_model(tmp_path: Path) -> None:
    """Every example gets a fresh site in its own folder under tmp_path."""
    print(f"\nT7: derandomized, max_examples={EXAMPLES} (CMS_STATE_EXAMPLES), stateful_step_count=30")
    run_state_machine_as_test(lambda: StoreMachine(tmp_path), settings=SETTINGS)


RENAME_TO_OWN_SLUG = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cms.config import Site
    from cms.content.index import Index
    from cms.content.store import Store
    root = Path(sys.argv[1])
    (root / "content" / "posts").mkdir(parents=True)
    (root / "cms.toml").write_text('[site]\\ntitle = "T"\\ntimezone = "UTC"\\n')
    site = Site.load(root)
    store = Store(site, Index.load(site, background_search=False))
    doc = store.create("posts", {"title": "Hello"})
    try:
        store.rename(doc, "hello")
    except Exception as exc:
        print(type(exc).__name__)
    else:
        print("ok")
    """
)


@pytest.mark.timeout(60)
def test_rename_to_own_slug_returns(tmp_path: Path) -> None:
    """Renaming a document to the slug it has must answer (no-op or 409), not hang."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", RENAME_TO_OWN_SLUG, str(tmp_path / "site")],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("Store.rename(doc, doc.slug) did not return within 5 s (self-deadlock on the document lock)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() in ("ok", "Conflict")
