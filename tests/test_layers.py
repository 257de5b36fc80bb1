"""The architecture as a test: imports point down the layer table of DESIGN.md, no import circle,
and each third-party framework stays in the modules made for it.

The rules, import-linter's `layers` contract (independent siblings) and `acyclic_siblings` in a
page of AST walking:

1. Every module has a layer: its own LAYERS line, or the line of a package that holds it (the
   longest prefix wins). There is no default: a package's `__init__` alone is `<package>.__init__`
   (`cms.__init__`), so a new module fails here until someone chooses its layer.
2. Imports point down the layers. Within layer 0 (the vocabulary, with nothing below it) modules may
   use each other. Within any other layer an import is allowed only inside one package:
   both modules under the same first-level package (`cms.content.*`, including `cms.content.query.*`;
   `cms.api.*`; `cms.media.*`; the top-level modules form the package `cms`), or a pair listed in
   SIDEWAYS with its reason. So two services of different packages (`cms.media.watch` subclassing
   `cms.watch.FolderWatch`) cannot lean on each other: what they share moves down a layer.
3. No import circle among cms modules, counting every import: those under `if TYPE_CHECKING:` and
   those inside functions too. A circle that only type checking or a late import closes is still
   one concept spread over two modules (`media.library` <-> `media.upkeep` was one).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import NamedTuple

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cms"

# module or package -> layer (the longest listed prefix wins); `<package>.__init__` is that file alone
LAYERS = {
    "cms.__init__": 0,
    "cms.content.__init__": 0,
    "cms.events.__init__": 0,
    "cms.errors": 0,
    "cms.config": 0,
    "cms.clock": 0,
    "cms.content.model": 0,
    "cms.content.fieldtypes": 0,
    "cms.content.docfields": 0,
    "cms.content.limits": 0,
    "cms.content.ulid": 0,
    "cms.history.__init__": 0,
    "cms.history.actor": 0,
    "cms.content.names": 0,  # pure rules for names (slugs, types, fields) and ids: vocabulary
    "cms.content.parse": 1,
    "cms.content.write": 1,
    "cms.content.frontmatter": 1,
    "cms.content.index": 1,
    "cms.content.loader": 1,
    "cms.content.search": 1,
    "cms.content.query": 1,
    "cms.content.markdown": 1,
    "cms.events.bus": 1,
    "cms.events.signing": 1,
    "cms.events.outbox": 1,
    "cms.state": 1,
    "cms.schema": 1,
    "cms.workers": 1,
    "cms.history.git": 1,
    "cms.folderwatch": 1,
    "cms.content.snapshot": 1,
    "cms.content.forked": 1,
    "cms.ratelimit": 1,
    "cms.audit": 1,
    "cms.net": 1,
    "cms.render.theme": 1,
    "cms.render.output": 1,
    "cms.content.store": 2,
    "cms.watch": 2,
    "cms.media": 2,
    "cms.auth": 2,
    "cms.backup": 2,
    "cms.events.webhooks": 2,
    "cms.events.subscriptions": 2,
    "cms.events.delivery": 2,
    "cms.events.scheduler": 2,
    "cms.scaffold": 2,
    "cms.api": 3,
    "cms.render": 3,  # the build and its parts: plan, views, pages, feeds, manifest, parallel, signature
    "cms.render.build": 3,
    "cms.doctor": 3,
    "cms.cli": 4,  # the package: common (the group, options, exit codes) and one module per set of commands
    "cms.serve": 4,
    "cms.__main__": 4,
    "cms.preview": 4,
}
# Imports within one layer across packages, each a conscious exception: (importer, imported) -> why.
SIDEWAYS = {
    ("cms.content.forked", "cms.workers"): "forked parsing starts its processes the one way workers allows",
    ("cms.events.outbox", "cms.state"): "the outbox is a table of state.db",
    ("cms.render.output", "cms.content.write"): "public/ temp files carry the temp prefix write.py declares",
    ("cms.__main__", "cms.cli"): "`python -m cms` is the `cms` command",
    ("cms.cli.site", "cms.serve"): "`cms serve` starts the server process serve.py runs",
}
# Third-party packages allowed only under these module prefixes.
CONFINED = {
    "starlette": ("cms.api", "cms.serve", "cms.preview"),
    "uvicorn": ("cms.serve",),
    "click": ("cms.cli",),
    "pygit2": ("cms.history",),
    "rich": ("cms.cli", "cms.serve", "cms.media"),
    "jinja2": ("cms.render",),
    "markupsafe": ("cms.render",),
    "httpx": ("cms.events.webhooks", "cms.events.delivery", "cms.media", "cms.net"),
    "PIL": ("cms.media",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))
NAMES = {_module_name(p): p for p in MODULES}
PACKAGES = {_module_name(p) for p in MODULES if p.name == "__init__.py"}


def _layer(module: str) -> int:
    if module in PACKAGES and f"{module}.__init__" in LAYERS:
        return LAYERS[f"{module}.__init__"]
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    assert best is not None, f"{module} is not in the layer table of tests/test_layers.py: choose its layer"
    return LAYERS[best]


def _package(module: str) -> str:
    """The first-level package a module belongs to: cms.content for cms.content.query.fields, cms for cms.watch."""
    parts = module.split(".")
    if len(parts) > 2 or module in PACKAGES:
        return ".".join(parts[:2])
    return "cms"


def _resolve(name: str) -> str:
    """The cms module an imported name is in (cms.media.item for cms.media.item.MediaItem)."""
    while name not in NAMES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


class _Import(NamedTuple):
    name: str
    line: int
    how: str  # "", "under TYPE_CHECKING" or "inside a function"


def _imports(path: Path) -> list[_Import]:
    """Every import of a module, wherever it stands; `from a import b` names a.b when b is a module."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: list[_Import] = []

    def visit(node: ast.AST, how: str) -> None:
        if isinstance(node, ast.Import):
            found.extend(_Import(alias.name, node.lineno, how) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            for alias in node.names:
                sub = f"{name}.{alias.name}"
                found.append(_Import(sub if sub in NAMES else name, node.lineno, how))
        for child in ast.iter_child_nodes(node):
            if isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
                visit(child, "under TYPE_CHECKING")
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, how or "inside a function")
            else:
                visit(child, how)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _graph() -> dict[str, dict[str, _Import]]:
    """cms module -> the cms modules it imports (first import of each)."""
    graph: dict[str, dict[str, _Import]] = {}
    for module, path in NAMES.items():
        edges = graph.setdefault(module, {})
        for imp in _imports(path):
            target = _resolve(imp.name)
            if imp.name.split(".")[0] == "cms" and target != module:
                edges.setdefault(target, imp)
    return graph


def _circles(graph: dict[str, dict[str, _Import]]) -> list[list[str]]:
    """One circle of modules per strongly connected component (Tarjan), each starting at its smallest name."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph.get(node, {}):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    circles = []
    for component in sorted(components):
        inside, start = set(component), component[0]
        paths = {start: [start]}
        queue = [start]
        while queue:  # the shortest way round from the component's first module back to it
            node = queue.pop(0)
            for nxt in sorted(graph[node]):
                if nxt == start:
                    circles.append([*paths[node], start])
                    queue = []
                    break
                if nxt in inside and nxt not in paths:
                    paths[nxt] = [*paths[node], nxt]
                    queue.append(nxt)
    return circles


def _describe(circle: list[str], graph: dict[str, dict[str, _Import]]) -> str:
    steps = [circle[0]]
    for a, b in zip(circle, circle[1:], strict=False):
        imp = graph[a][b]
        where = f"{NAMES[a].relative_to(PACKAGE.parent)}:{imp.line}" + (f", {imp.how}" if imp.how else "")
        steps.append(f"  -> {b}   ({where})")
    return "\n".join(steps)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_point_down(path: Path) -> None:
    module = _module_name(path)
    own = _layer(module)
    for imp in _imports(path):
        name, line = imp.name, imp.line
        if name.split(".")[0] == "cms":
            target = _resolve(name)
            if target == module:
                continue
            layer = _layer(target)
            assert layer <= own, f"{module}:{line} imports {target} (layer {layer}) from layer {own}"
            if layer == own > 0 and _package(module) != _package(target):
                assert (module, target) in SIDEWAYS, (
                    f"{module}:{line} imports {target}: both layer {own}, in different packages "
                    f"({_package(module)}, {_package(target)}); move what they share down a layer "
                    "(or, for a mechanism using another, add the pair to SIDEWAYS with the reason)"
                )
            if module.startswith("cms.api"):
                assert not target.startswith("cms.render"), f"{module}:{line}: api/ must not import render/"
            if module.startswith("cms.render"):
                assert not target.startswith("cms.api"), f"{module}:{line}: render/ must not import api/"
        else:
            top = name.split(".")[0]
            allowed = CONFINED.get(top)
            if allowed is not None:
                assert module.startswith(allowed), f"{module}:{line} imports {top}, allowed only in {allowed}"


def test_no_import_circle() -> None:
    graph = _graph()
    circles = _circles(graph)
    assert not circles, "import circles among cms modules (TYPE_CHECKING and late imports count):\n" + "\n\n".join(
        _describe(c, graph) for c in circles
    )


def test_every_module_has_a_layer() -> None:
    unlisted = []
    for module in NAMES:
        try:
            _layer(module)
        except AssertionError:
            unlisted.append(module)
    assert not unlisted, f"not in the layer table of tests/test_layers.py (choose a layer for each): {unlisted}"


def test_every_sideways_import_exists() -> None:
    """A SIDEWAYS pair that no longer occurs is removed, so the list stays the truth."""
    graph = _graph()
    stale = [pair for pair in SIDEWAYS if pair[1] not in graph.get(pair[0], {})]
    assert not stale, f"SIDEWAYS lists imports that no longer exist: {stale}"
