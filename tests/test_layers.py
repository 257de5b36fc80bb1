"""The architecture as a test: imports point down the layer table of DESIGN.md, and each third-party
framework stays in the modules made for it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "cms"

# module prefix -> layer (longest prefix wins)
LAYERS = {
    "cms.errors": 0,
    "cms.config": 0,
    "cms.clock": 0,
    "cms.content.model": 0,
    "cms": 0,
    "cms.content.names": 1,
    "cms.content.parse": 1,
    "cms.content.write": 1,
    "cms.content.index": 1,
    "cms.content.search": 1,
    "cms.content.query": 1,
    "cms.content.markdown": 1,
    "cms.events.bus": 1,
    "cms.state": 1,
    "cms.schema": 1,
    "cms.workers": 1,
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
    "cms.events.scheduler": 2,
    "cms.scaffold": 2,
    "cms.api": 3,
    "cms.render.build": 3,
    "cms.doctor": 3,
    "cms.cli": 4,
    "cms.serve": 4,
    "cms.__main__": 4,
    "cms.preview": 4,
}
# Third-party packages allowed only under these module prefixes.
CONFINED = {
    "starlette": ("cms.api", "cms.serve", "cms.preview"),
    "uvicorn": ("cms.serve",),
    "click": ("cms.cli",),
    "rich": ("cms.cli", "cms.serve", "cms.media"),
    "jinja2": ("cms.render",),
    "markupsafe": ("cms.render",),
    "httpx": ("cms.events.webhooks", "cms.media", "cms.net"),
    "PIL": ("cms.media",),
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    assert best is not None, f"{module} is not in the layer table of tests/test_layers.py"
    return LAYERS[best]


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                name = ".".join([*base, node.module] if node.module else base)
            else:
                name = node.module or ""
            found.append((name, node.lineno))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_imports_point_down(path: Path) -> None:
    module = _module_name(path)
    own = _layer(module)
    for name, line in _imports(path):
        if name.startswith("cms"):
            if name == "cms" or module == "cms":
                continue
            target = _layer(name)
            assert target <= own, f"{module}:{line} imports {name} (layer {target}) from layer {own}"
            if module.startswith("cms.api"):
                assert not name.startswith("cms.render"), f"{module}:{line}: api/ must not import render/"
            if module.startswith("cms.render"):
                assert not name.startswith("cms.api"), f"{module}:{line}: render/ must not import api/"
        else:
            top = name.split(".")[0]
            allowed = CONFINED.get(top)
            if allowed is not None:
                assert module.startswith(allowed), f"{module}:{line} imports {top}, allowed only in {allowed}"


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        _layer(_module_name(path))
