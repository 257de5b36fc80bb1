"""One write, one commit: the files a store write changed, committed in-process with libgit2.

The commit is built from HEAD's tree plus exactly the written files (never from the git index, so
what a person staged is not swept in), and the branch is moved with a compare-and-swap: libgit2's
`set_target` refuses when the branch moved since it was read (a person's `git commit`, a pull),
and the commit is rebuilt on the new HEAD. Afterwards the git index entries of the written paths
are set to the new blobs, so `git status` stays clean and a later `git commit -a` cannot revert the
API's commit with a stale index.

A file a person edited and did not commit yet is committed first, as it was before the write, in
an `external edit` commit of its own: a person's change is never attributed to an API key.

The caller holds the store's history lock: one writer at a time, across processes.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import FileMode

from .actor import Actor

log = logging.getLogger("cms.history")

MAX_RETRIES = 8  # a moved HEAD is retried this often (each retry means someone else committed)
COMMITTER = Actor("cms", "cms@localhost")
EXTERNAL = Actor("filesystem", "filesystem@localhost")  # a hand edit when git names no user


@dataclass(frozen=True)
class FileChange:
    """One file a write changed, relative to content/: its bytes before (None: new) and after
    (None: deleted)."""

    rel: str
    before: bytes | None
    after: bytes | None


class GitHistory:
    """Commits of one site's content/ folder in the git repository that holds it."""

    def __init__(self, repo: pygit2.Repository, content_dir: Path) -> None:
        self.repo = repo
        self.workdir = Path(repo.workdir).resolve()
        self.prefix = content_dir.resolve().relative_to(self.workdir).as_posix()

    @classmethod
    def open(cls, content_dir: Path) -> GitHistory | None:
        """The history of `content_dir`, or None when it is not inside a git work tree."""
        found = pygit2.discover_repository(str(content_dir))
        if found is None:
            return None
        repo = pygit2.Repository(found)
        if repo.is_bare or repo.workdir is None:
            return None
        try:
            return cls(repo, content_dir)
        except ValueError:  # content/ outside the work tree (a symlink out of it)
            return None

    def path_of(self, rel: str) -> str:
        """A content/-relative path as the repository names it."""
        return f"{self.prefix}/{rel}" if self.prefix not in ("", ".") else rel

    # -- committing --------------------------------------------------------------------------

    def commit(self, changes: Sequence[FileChange], message: str, author: Actor | None) -> pygit2.Oid | None:
        """Commit `changes` (after any uncommitted hand edit of the same files); the new commit id,
        or None when the files are already as HEAD has them."""
        if not changes:
            return None
        branch = self._branch()
        for _ in range(MAX_RETRIES):
            ref = self.repo.references.get(branch)  # read once: the compare-and-swap compares with it
            head = None if ref is None or isinstance(ref.target, str) else ref.target
            external = [c for c in changes if self._blob_bytes(head, c.rel) != c.before]
            parent = head
            if external:
                before = {c.rel: c.before for c in external}
                parent = self._commit_on(parent, before, f"external edit {', '.join(sorted(before))}", self._person())
            oid = self._commit_on(parent, {c.rel: c.after for c in changes}, message, author or self._person())
            if oid == head:
                return None
            if self._move(branch, ref, oid, message):
                try:
                    self._update_index(changes)
                except pygit2.GitError:  # index.lock held by a running git: the commit stands
                    log.warning("git index not updated for %s (locked); `git status` may list it", message)
                return oid
        raise RuntimeError(f"{branch} kept moving: gave up after {MAX_RETRIES} tries")

    def _branch(self) -> str:
        """The branch HEAD names (it may not exist yet in a repository without commits)."""
        head = self.repo.references["HEAD"]
        return str(head.target) if isinstance(head.target, str) else "HEAD"

    def _blob_bytes(self, commit: pygit2.Oid | None, rel: str) -> bytes | None:
        if commit is None:
            return None
        try:
            entry = self.repo[commit].peel(pygit2.Tree)[self.path_of(rel)]
        except KeyError:
            return None
        blob = self.repo[entry.id]
        return blob.data if isinstance(blob, pygit2.Blob) else None

    def _commit_on(
        self, parent: pygit2.Oid | None, files: dict[str, bytes | None], message: str, author: Actor
    ) -> pygit2.Oid:
        """A commit of `parent`'s tree with `files` replaced (None: removed); `parent` if nothing changed."""
        base = None if parent is None else self.repo[parent].peel(pygit2.Tree)
        files_in_repo = {tuple(self.path_of(rel).split("/")): data for rel, data in files.items()}
        tree = self._tree_with(base, files_in_repo)
        if parent is not None and base is not None and base.id == tree:
            return parent
        committer = _signature(COMMITTER)
        return self.repo.create_commit(
            None, _signature(author), committer, message + "\n", tree, [] if parent is None else [parent]
        )

    def _tree_with(self, base: pygit2.Tree | None, files: dict[tuple[str, ...], bytes | None]) -> pygit2.Oid:
        """`base` with `files` (path parts -> bytes, None: removed) put in: only the trees on the
        written paths are rebuilt, the rest is shared with `base` (a whole-index write_tree costs
        a hash of every entry of the repository)."""
        builder = self.repo.TreeBuilder(base) if base is not None else self.repo.TreeBuilder()
        here = {parts[0]: data for parts, data in files.items() if len(parts) == 1}
        below: dict[str, dict[tuple[str, ...], bytes | None]] = {}
        for parts, data in files.items():
            if len(parts) > 1:
                below.setdefault(parts[0], {})[parts[1:]] = data
        for name, data in here.items():
            if data is None:
                if builder.get(name) is not None:
                    builder.remove(name)
            else:
                builder.insert(name, self.repo.create_blob(data), FileMode.BLOB)
        for name, inner in below.items():
            entry = base[name] if base is not None and name in base else None
            sub = self.repo[entry.id] if entry is not None and entry.filemode == FileMode.TREE else None
            sub_id = self._tree_with(sub if isinstance(sub, pygit2.Tree) else None, inner)
            if len(self.repo[sub_id].peel(pygit2.Tree)) == 0:  # a folder emptied: git keeps none
                if builder.get(name) is not None:
                    builder.remove(name)
            else:
                builder.insert(name, sub_id, FileMode.TREE)
        written: pygit2.Oid = builder.write()
        return written

    def _move(self, branch: str, ref: pygit2.Reference | None, oid: pygit2.Oid, message: str) -> bool:
        """Point the branch at `oid` if it still is what `ref` read (False: it moved, try again)."""
        try:
            if ref is None:
                self.repo.references.create(branch, oid)  # refused if the branch appeared meanwhile
            else:
                ref.set_target(oid, f"cms: {message}")  # libgit2 compares with the value read
        except pygit2.GitError:
            return False
        return True

    def _update_index(self, changes: Iterable[FileChange]) -> None:
        """The git index entries of the written paths set to what was committed (`git status` clean)."""
        index = self.repo.index
        index.read()  # as it is now: a person may have run `git add` since
        for change in changes:
            path = self.path_of(change.rel)
            if change.after is None:
                if path in index:
                    index.remove(path)
            elif (self.workdir / path).is_file():
                index.add(path)  # from the file on disk: its stat data too, so git sees no change
        index.write()

    def _person(self) -> Actor:
        """Git's configured user (the CLI's author, and a hand edit's), else `filesystem`."""
        config = self.repo.config
        try:
            return Actor(str(config["user.name"]), str(config["user.email"]))
        except KeyError:
            return EXTERNAL


def _signature(actor: Actor) -> pygit2.Signature:
    return pygit2.Signature(actor.name, actor.email)
