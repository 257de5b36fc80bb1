"""T2: the durable write recipe (reliability plan 3-B.1), checked on the system calls themselves.

`atomic_write` runs under `strace -f`; the trace must show, in this order:

    openat(<folder>/.cms-tmp-*) = fd  ...  fsync(fd)                 the data is on disk
    rename(<tmp>, <final>)                                          atomically swapped in
    openat(<folder>, O_DIRECTORY) = dfd  ...  fsync(dfd)            the directory entry is on disk

fds are tracked from openat's return values (and close), so a reused number is not mistaken for
the temp file. A new file gets 0666 minus the umask (0644 under 022), not mkstemp's 0600, and a
replaced file keeps its own mode.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from cms.content.write import TEMP_PREFIX

REPO = Path(__file__).resolve().parents[2]
SYSCALLS = "openat,close,fsync,fdatasync,rename,renameat,renameat2,unlink,unlinkat"
_LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<name>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\d+|\?)")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')

WRITE_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.umask(0o022)  # before the import, in case the write module reads it at import time
    from pathlib import Path
    from cms.content.write import atomic_write
    target = Path(sys.argv[1])
    atomic_write(target, b"---\\ntitle: Hello\\n---\\nBody.\\n")
    print(oct(os.stat(target).st_mode & 0o777))
    """
)
DELETE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from cms.content.model import etag_of
    from cms.content.write import replace_checked
    target = Path(sys.argv[1])
    replace_checked(target, None, etag_of(target.read_bytes()))
    """
)


@dataclass(frozen=True)
class Call:
    seq: int
    name: str
    fd: int | None  # the fd argument of fsync/fdatasync/close
    paths: tuple[str, ...]  # the string arguments (openat, rename*, unlink*)
    ret: int | None
    raw: str


def _parse(trace: str) -> list[Call]:
    calls: list[Call] = []
    for raw in trace.splitlines():
        m = _LINE.match(raw)
        if m is None:  # signals, exit lines, "<unfinished ...>" (the script is single-threaded)
            continue
        args = m["args"]
        first = args.split(",", 1)[0].strip()
        fd = int(first) if m["name"] in ("fsync", "fdatasync", "close") and first.isdigit() else None
        ret = int(m["ret"]) if m["ret"] != "?" else None
        paths = tuple(s.encode().decode("unicode_escape") for s in _STRING.findall(args))
        calls.append(Call(len(calls), m["name"], fd, paths, ret, raw))
    return calls


def _strace(tmp_path: Path, script: str, *args: str) -> tuple[list[Call], str]:
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (it is on the shared dev/CI machine: apt-get install strace)")
    out = tmp_path / "strace.out"
    proc = subprocess.run(
        [strace, "-f", "-s", "4096", "-e", f"trace={SYSCALLS}", "-o", str(out), sys.executable, "-c", script, *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, f"traced script failed:\n{proc.stdout}\n{proc.stderr}"
    return _parse(out.read_text()), proc.stdout


def _fd_owner(calls: list[Call]) -> dict[int, Call | None]:
    """For each fsync/fdatasync (by seq): the openat that returned its fd, per the trace."""
    open_fds: dict[int, Call] = {}
    owner: dict[int, Call | None] = {}
    for call in calls:
        if call.name == "openat" and call.ret is not None and call.ret >= 0 and call.paths:
            open_fds[call.ret] = call
        elif call.name == "close" and call.fd is not None:
            open_fds.pop(call.fd, None)
        elif call.name in ("fsync", "fdatasync") and call.fd is not None:
            owner[call.seq] = open_fds.get(call.fd)
    return owner


def _syncs_of(owner: dict[int, Call | None], path: str) -> list[tuple[int, Call]]:
    """(seq of the fsync, its openat) for every fsync of an fd opened on `path`."""
    return [(seq, op) for seq, op in sorted(owner.items()) if op is not None and op.paths[0] == path]


@pytest.mark.timeout(120)
def test_atomic_write_fsyncs_file_then_renames_then_fsyncs_folder(tmp_path: Path) -> None:
    folder = tmp_path / "content" / "posts"
    folder.mkdir(parents=True)
    target = folder / "hello.md"
    calls, stdout = _strace(tmp_path, WRITE_SCRIPT, str(target))
    owner = _fd_owner(calls)
    final, dir_path = str(target), str(folder)

    temps = [
        c
        for c in calls
        if c.name == "openat" and c.paths and Path(c.paths[0]).name.startswith(TEMP_PREFIX) and (c.ret or -1) >= 0
    ]
    assert len(temps) == 1, f"expected one temp file opened, got {temps}"
    tmp = temps[0].paths[0]
    assert str(Path(tmp).parent) == dir_path, f"the temp file must be in the target's folder, not {tmp}"

    renames = [c for c in calls if c.name.startswith("rename") and c.paths[-2:] == (tmp, final) and c.ret == 0]
    assert len(renames) == 1, f"expected rename({tmp}, {final}); trace renames: " + str(
        [c for c in calls if c.name.startswith("rename")]
    )
    rename = renames[0]

    file_syncs = [seq for seq, _ in _syncs_of(owner, tmp)]
    assert file_syncs, "the temp file was never fsync'd"
    assert min(file_syncs) < rename.seq, "fsync(temp fd) must happen before rename(temp, final)"

    dir_syncs = [(seq, op) for seq, op in _syncs_of(owner, dir_path) if seq > rename.seq]
    assert dir_syncs, f"no fsync of an fd opened on {dir_path} after the rename: the new name may not survive a crash"
    assert "O_DIRECTORY" in dir_syncs[0][1].raw, f"the folder must be opened O_DIRECTORY: {dir_syncs[0][1].raw}"

    assert stdout.strip() == "0o644", f"a new file under umask 022 must be 0644, got {stdout.strip()}"


@pytest.mark.timeout(120)
def test_delete_unlinks_then_fsyncs_folder(tmp_path: Path) -> None:
    folder = tmp_path / "content" / "posts"
    folder.mkdir(parents=True)
    target = folder / "gone.md"
    target.write_bytes(b"---\ntitle: Gone\n---\n")
    calls, _ = _strace(tmp_path, DELETE_SCRIPT, str(target))
    owner = _fd_owner(calls)
    unlinks = [c for c in calls if c.name in ("unlink", "unlinkat") and str(target) in c.paths and c.ret == 0]
    assert len(unlinks) == 1, f"expected one unlink of {target}"
    assert any(seq > unlinks[0].seq for seq, _ in _syncs_of(owner, str(folder))), (
        "the folder must be fsync'd after the unlink, or the deleted file can come back after a crash"
    )
    assert not target.exists()


MODE_SCRIPT = textwrap.dedent(
    """
    import os, sys
    os.umask(int(sys.argv[2], 8))
    from pathlib import Path
    from cms.content.write import atomic_write
    folder = Path(sys.argv[1])
    atomic_write(folder / "new.md", b"new\\n")
    old = folder / "old.md"
    old.write_bytes(b"old\\n")
    os.chmod(old, 0o640)
    atomic_write(old, b"replaced\\n")
    print(oct(os.stat(folder / "new.md").st_mode & 0o777), oct(os.stat(old).st_mode & 0o777))
    """
)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("umask", "new_mode"), [("022", "0o644"), ("027", "0o640"), ("077", "0o600")])
def test_file_modes(tmp_path: Path, umask: str, new_mode: str) -> None:
    """New files: 0666 minus the umask (never mkstemp's 0600 under 022); replaced files keep their mode."""
    proc = subprocess.run(
        [sys.executable, "-c", MODE_SCRIPT, str(tmp_path), umask], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    new, replaced = proc.stdout.split()
    assert new == new_mode, f"umask {umask}: new file is {new}, expected {new_mode}"
    assert replaced == "0o640", f"a replaced 0640 file became {replaced}"
    assert stat.S_IMODE(os.stat(tmp_path / "old.md").st_mode) == 0o640
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]
