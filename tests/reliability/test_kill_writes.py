"""T1: kill -9 during writes, then startup recovery; nothing acked is lost, nothing is half-written.

The random test runs `writer_child` on a seeded site, SIGKILLs it after a uniform 0-50 ms delay
(counted from the moment its index is loaded), and after each kill checks the site:

- `Store.recover()` leaves 0 `.cms-tmp-*` files;
- every `.md` and `_type.yaml` parses (and the fresh index reports no problem at all);
- every path whose last log entry is an ack holds exactly the acked bytes; a path with a later
  `begin` holds its acked pre-image or a post-image that parses;
- no file exists that the log never mentioned, no id is on two files;
- a fresh `Index.load` equals a disk scan: same document paths, same bytes.

CMS_CRASH_RUNS (default 40) sets the number of kills; CMS_CRASH_SEED the seed (printed).

The crash-point tests kill the writer at exact places (before/after `os.replace`, `os.link`,
`os.unlink`, the folder fsync) and demand the stricter criterion of the plan: every touched file
byte-equals its pre-image or its post-image (computed by running the same script, uninterrupted
and with a fixed clock, on a copy of the site).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cms.config import RESERVED_FOLDERS, Site
from cms.content.index import Index
from cms.content.model import content_type_from_dict
from cms.content.parse import decode, load_yaml, parse_document
from cms.content.store import Store
from cms.content.write import TEMP_PREFIX
from cms.errors import ParseError
from tests.reliability.writer_child import DELETED, build_site

REPO = Path(__file__).resolve().parents[2]
RUNS = int(os.environ.get("CMS_CRASH_RUNS", "40"))
SEED = int(os.environ.get("CMS_CRASH_SEED", "20260501"))
MAX_DELAY = 0.050
# Store.rename is crash-atomic (journaled; see RENAME_BUG for what it was): the random test is strict.
# False would make it tolerate, count and roll back a half-done rename again.
RENAME_IS_ATOMIC = True
READY_TIMEOUT = 30.0


# -- the log -----------------------------------------------------------------------------------


@dataclass
class LogState:
    """What the log says about every path: last acked sha (None: absent) and any write in flight.

    `pending` maps a path to what its interrupted operation would leave there: "absent" (delete,
    the old name of a rename) or "present" (create, update, status, type, the new name).
    """

    acked: dict[str, str | None] = field(default_factory=dict)
    pending: dict[str, str] = field(default_factory=dict)
    renames: dict[str, str] = field(default_factory=dict)  # new name -> old name, while pending
    acks: int = 0
    begins: int = 0

    @classmethod
    def read(cls, path: Path) -> LogState:
        state = cls()
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        lines = text.split("\n")
        for line in lines[:-1]:  # the last piece has no newline: never complete
            word, _, rest = line.partition(" ")
            if word == "begin":
                op, *rels = rest.split(" ")
                for i, rel in enumerate(rels):
                    gone = op == "delete" or (op == "rename" and i == 0)
                    state.pending[rel] = "absent" if gone else "present"
                if op == "rename":
                    state.renames[rels[1]] = rels[0]
                state.begins += 1
            elif word in ("acked", "settled"):
                rel, sha = rest.rsplit(" ", 1)
                state.acked[rel] = None if sha == DELETED else sha
                state.pending.pop(rel, None)
                state.renames.pop(rel, None)
                state.acks += word == "acked"
            else:
                raise AssertionError(f"unexpected log line {line!r}")
        return state


def _sha(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _append(log: Path, lines: Iterable[str]) -> None:
    with open(log, "a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())


# -- checks after a kill -----------------------------------------------------------------------


def _content_files(content: Path) -> list[str]:
    """Every file under content/, hidden folders included, as POSIX paths relative to it."""
    out = []
    for folder, _dirs, names in os.walk(content):
        for name in names:
            out.append(os.path.relpath(os.path.join(folder, name), content).replace(os.sep, "/"))
    return sorted(out)


def _parses(content: Path, rel: str) -> str | None:
    """None if the file parses as what its name says, else the error."""
    data = (content / rel).read_bytes()
    try:
        if rel.endswith("/_type.yaml"):
            raw = load_yaml(decode(data, rel), rel, first_line=1)
            content_type_from_dict(rel.split("/")[0], raw)
        else:
            parse_document(data, rel)
    except (ParseError, ValueError) as exc:
        return str(exc)
    return None


def check_site(
    site: Site, log: Path, *, strict: dict[str, set[str | None]] | None = None, tolerate_rename_bug: bool = False
) -> dict[str, int]:
    """Run startup recovery and every T1 check; settle pending paths in the log. Counts found.

    `tolerate_rename_bug` (the random test, while RENAME_IS_ATOMIC is False): a rename killed
    between its link and its unlink leaves the old file and a byte-identical copy under the new
    name. Such a pair is counted and rolled back (the copy removed: the rename was never acked)
    before the id and index checks; nothing else is forgiven.
    """
    content = site.content_dir
    removed = Store(site, Index(site)).recover()
    files = _content_files(content)
    temps = [f for f in files if f.rsplit("/", 1)[-1].startswith(TEMP_PREFIX)]
    assert not temps, f"temp files left after Store.recover(): {temps}"

    # Every content file parses.
    readable = [f for f in files if f.endswith(".md") or f.endswith("/_type.yaml")]
    broken = {f: err for f in readable if (err := _parses(content, f))}
    assert not broken, f"unparsable files after a kill: {broken}"

    # Acked writes are on disk; a pending path holds its pre-image or a post-image that parses.
    state = LogState.read(log)
    known = set(state.acked) | set(state.pending)
    unknown = [f for f in readable if f not in known]
    assert not unknown, f"files the writer never logged: {unknown}"
    for rel in sorted(known):
        current = _sha(content / rel)
        acked = state.acked.get(rel)
        if strict is not None and rel in strict:
            assert current in strict[rel], (
                f"{rel}: bytes sha {current} are neither the pre-image nor the post-image {strict[rel]}"
                f"{_head(content / rel)}"
            )
        if rel in state.pending:
            post_ok = (current is None) == (state.pending[rel] == "absent")
            assert current == acked or post_ok, (
                f"{rel}: an interrupted write left neither the acked pre-image ({acked}) nor a "
                f"{state.pending[rel]} post-image (disk: {current})"
            )
        else:
            assert current == acked, f"{rel}: acked sha {acked} but disk has {current}: an acked write was lost"

    half_renames = two_files = 0
    for new, old in sorted(state.renames.items()):
        old_bytes = state.acked.get(old)
        if state.pending.get(new) == "present" and old_bytes is not None and _sha(content / new) == old_bytes:
            half_renames += 1  # the new name holds the old bytes: no alias yet (and maybe two files)
            if tolerate_rename_bug and (content / old).exists():
                two_files += 1
                os.unlink(content / new)
                readable.remove(new)

    # No id on two files; the fresh index equals a disk scan.
    ids: dict[str, str] = {}
    for rel in readable:
        if rel.endswith(".md"):
            doc_id = parse_document((content / rel).read_bytes(), rel).meta.get("id")
            if doc_id is not None:
                assert str(doc_id) not in ids, f"duplicate id {doc_id}: {ids[str(doc_id)]} and {rel}"
                ids[str(doc_id)] = rel
    index = Index.load(site, fill_search=False)
    assert not index.problems, f"the index reports problems: {index.problems}"
    on_disk = {
        f
        for f in readable
        if f.endswith(".md")
        and f.split("/")[0] not in RESERVED_FOLDERS
        and not any(p.startswith((".", "_")) for p in f.split("/"))
    }
    assert set(index.by_path) == on_disk, (
        f"index != disk: only indexed {set(index.by_path) - on_disk}, only on disk {on_disk - set(index.by_path)}"
    )
    for rel, doc_id in index.by_path.items():
        assert index.docs[doc_id].etag == "sha256-" + _sha(content / rel), f"{rel}: index bytes differ from disk"

    settled = sorted(state.pending)
    _append(log, (f"settled {rel} {_sha(content / rel) or DELETED}" for rel in settled))
    return {
        "removed_temps": removed,
        "pending": len(settled),
        "acks": state.acks,
        "half_renames": half_renames,
        "two_files": two_files,
    }


def _head(path: Path) -> str:
    if not path.exists():
        return " (absent)"
    return "\n--- file ---\n" + path.read_text(encoding="utf-8", errors="replace")[:600]


# -- the child ---------------------------------------------------------------------------------


def _spawn(site_dir: Path, log: Path, seed: int, stderr: Path, env: dict[str, str] | None = None) -> Any:
    err = open(stderr, "ab")  # noqa: SIM115 - closed by _finish
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.writer_child", str(site_dir), str(log), str(seed)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=err,
        env={**os.environ, **(env or {})},
    )
    proc._stderr_file = err  # type: ignore[attr-defined]
    return proc


def _wait_ready(proc: Any, stderr: Path) -> None:
    ready, _, _ = select.select([proc.stdout], [], [], READY_TIMEOUT)
    line = proc.stdout.readline() if ready else b""
    if line.strip() != b"ready":
        proc.kill()
        proc.wait()
        raise AssertionError(f"writer did not start: {line!r}\n{stderr.read_text(errors='replace')[-3000:]}")


def _finish(proc: Any) -> int:
    code = proc.wait(timeout=30)
    proc.stdout.close()
    proc._stderr_file.close()
    return int(code)


def seed_log(site: Site, log: Path) -> None:
    """The seed files are the first acked state."""
    content = site.content_dir
    rels = [f for f in _content_files(content) if f.endswith(".md") or f.endswith("/_type.yaml")]
    _append(log, (f"settled {rel} {_sha(content / rel)}" for rel in rels))


# -- the random kill test ----------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_minus_nine_during_writes(tmp_path: Path) -> None:
    print(f"\nT1 seed={SEED} runs={RUNS} (CMS_CRASH_SEED / CMS_CRASH_RUNS)")
    root = tmp_path / "site"
    build_site(root)
    site = Site.load(root)
    log = tmp_path / "writes.log"
    stderr = tmp_path / "child.stderr"
    seed_log(site, log)
    rng = random.Random(SEED)
    mid_op = removed = half_renames = two_files = 0
    started = time.monotonic()
    for run in range(RUNS):
        child_seed = rng.randrange(2**32)
        delay = rng.uniform(0, MAX_DELAY)
        where = f"seed={SEED} run={run} child_seed={child_seed} delay={delay * 1000:.1f}ms"
        proc = _spawn(root, log, child_seed, stderr)
        _wait_ready(proc, stderr)
        time.sleep(delay)
        alive = proc.poll() is None
        if alive:
            os.kill(proc.pid, signal.SIGKILL)
        code = _finish(proc)
        assert alive and code == -signal.SIGKILL, (
            f"{where}: the writer exited by itself with {code}\n{stderr.read_text(errors='replace')[-4000:]}"
        )
        try:
            counts = check_site(site, log, tolerate_rename_bug=not RENAME_IS_ATOMIC)
        except AssertionError as exc:
            raise AssertionError(f"{where}: {exc}") from None
        mid_op += counts["pending"] > 0
        removed += counts["removed_temps"]
        half_renames += counts["half_renames"]
        two_files += counts["two_files"]
    final = LogState.read(log)
    elapsed = time.monotonic() - started
    print(
        f"T1 seed={SEED}: {RUNS} kills in {elapsed:.1f}s, {final.acks} acked writes, "
        f"{mid_op} kills with a write in flight, {removed} temp files removed by recovery, "
        f"{half_renames} renames left half done by the kill (known bug, RENAME_BUG: the new name without its "
        f"alias; {two_files} of them with the old file still there, rolled back)"
    )
    # Loose floors (a loaded 2-core machine slows the writer down), but not a vacuous test.
    assert final.acks >= RUNS // 4, f"only {final.acks} acked writes in {RUNS} runs: the test proves little"
    assert mid_op > 0, "no kill landed inside an operation"


# -- deterministic crash points ----------------------------------------------------------------

FIXED_CLOCK = "2026-03-01T12:00:00+00:00"
RENAME_BUG = (
    "Store.rename links the old file to the new name, unlinks the old one and only then rewrites the "
    "new file with `aliases`: a kill in between leaves two files with one id (after link) or a renamed "
    "file without the alias (after unlink), and Store.recover() repairs neither"
)

CRASH_POINTS = [
    # Updates commit with an atomic exchange (renameat2) and creates with link(): those are the steps to cut.
    pytest.param("update", "before:_exchange", id="update-before-exchange"),
    pytest.param("update", "after:_exchange", id="update-after-exchange"),
    pytest.param("update", "before:fsync_folder", id="update-before-dirsync"),
    pytest.param("create", "before:link", id="create-before-link"),
    pytest.param("create", "after:link", id="create-after-link"),
    pytest.param("create", "before:fsync_folder", id="create-before-dirsync"),
    pytest.param("delete", "after:unlink", id="delete-after-unlink"),
    pytest.param("type", "before:_exchange", id="type-before-exchange"),
    pytest.param("type", "before:fsync_folder", id="type-before-dirsync"),
    pytest.param("rename", "after:link", id="rename-after-link"),
    pytest.param("rename", "after:unlink", id="rename-after-unlink"),
    pytest.param("rename", "before:replace", id="rename-before-replace"),
    pytest.param("rename", "before:fsync_folder", id="rename-before-dirsync"),
]

SCRIPTS: dict[str, tuple[list[dict[str, Any]], list[str]]] = {
    "update": ([{"op": "update", "rel": "posts/water.md", "values": {"title": "Water, again"}}], ["posts/water.md"]),
    "create": (
        [{"op": "create", "type_name": "posts", "slug": "new-post", "values": {"title": "yes", "content": "Hi.\n"}}],
        ["posts/new-post.md"],
    ),
    "delete": ([{"op": "delete", "rel": "posts/grinders.md"}], ["posts/grinders.md"]),
    "type": (
        [{"op": "save_type", "type_name": "products", "description": "no"}],
        ["products/_type.yaml"],
    ),
    "rename": (
        [{"op": "rename", "rel": "posts/cold-brew.md", "slug": "cold-brew-guide"}],
        ["posts/cold-brew.md", "posts/cold-brew-guide.md"],
    ),
}


def _run_script(root: Path, log: Path, stderr: Path, script: list[dict[str, Any]], crash: str | None) -> int:
    env = {"CMS_CHILD_SCRIPT": json.dumps(script), "CMS_FIXED_CLOCK": FIXED_CLOCK}
    if crash:
        env["CMS_CRASH_AT"] = crash
    proc = _spawn(root, log, 0, stderr, env)
    _wait_ready(proc, stderr)
    return _finish(proc)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("op", "crash"), CRASH_POINTS)
def test_crash_point(tmp_path: Path, op: str, crash: str) -> None:
    script, touched = SCRIPTS[op]
    # The post-images: the same script, uninterrupted, on an identical copy.
    clean = tmp_path / "clean"
    build_site(clean)
    clean_log = tmp_path / "clean.log"
    assert _run_script(clean, clean_log, tmp_path / "clean.stderr", script, None) == 0, (
        tmp_path / "clean.stderr"
    ).read_text()
    root = tmp_path / "site"
    build_site(root)
    site = Site.load(root)
    log = tmp_path / "writes.log"
    seed_log(site, log)
    pre = {rel: _sha(root / "content" / rel) for rel in touched}
    post = {rel: _sha(clean / "content" / rel) for rel in touched}
    stderr = tmp_path / "child.stderr"
    code = _run_script(root, log, stderr, script, crash)
    assert code == -signal.SIGKILL, f"the crash point {crash} was never reached (exit {code}): {stderr.read_text()}"
    assert set(LogState.read(log).pending) == set(touched), "the kill must land inside the operation"
    check_site(site, log, strict={rel: {pre[rel], post[rel]} for rel in touched})


@pytest.mark.timeout(60)
def test_recovery_removes_temp_files_in_every_folder(tmp_path: Path) -> None:
    """A temp file of a killed writer in a type folder, a nested folder and uploads/ goes away."""
    build_site(tmp_path)
    site = Site.load(tmp_path)
    temps = [
        site.content_dir / "posts" / f"{TEMP_PREFIX}abc.md",
        site.content_dir / "products" / f"{TEMP_PREFIX}def.yaml",
        site.content_dir / "posts" / "2026" / f"{TEMP_PREFIX}ghi.md",
        site.uploads_dir / "2026" / f"{TEMP_PREFIX}jkl.webp",
    ]
    for path in temps:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"---\ntitle: half")
    assert Store(site, Index(site)).recover() == len(temps)
    assert not [p for p in temps if p.exists()]
    assert (site.content_dir / "posts" / "water.md").exists()


@pytest.mark.timeout(60)
def test_recovery_spares_the_temp_file_of_a_live_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_site(tmp_path)
    site = Site.load(tmp_path)
    store = Store(site, Index.load(site, fill_search=False))
    in_fsync, go = threading.Event(), threading.Event()
    real_fsync = os.fsync

    def slow_fsync(fd: int) -> None:
        if threading.current_thread().name == "writer" and not in_fsync.is_set():
            in_fsync.set()  # the temp file exists and holds the data; os.replace comes next
            go.wait(10)
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", slow_fsync)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            store.create("posts", {"title": "Racing", "content": "Body.\n"})
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    writer = threading.Thread(target=write, name="writer")
    writer.start()
    assert in_fsync.wait(10)
    removed = Store(site, Index(site)).recover()  # a second worker's startup recovery
    go.set()
    writer.join(10)
    assert not errors, f"recovery removed {removed} temp file(s) and broke a live write: {errors[0]!r}"
    assert (site.content_dir / "posts" / "racing.md").exists()
