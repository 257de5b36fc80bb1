"""The docs are tested like code: every setting, operator, parameter, field type and command is documented."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import click
import pytest

from cms.cli import main
from cms.config import SECTIONS, TaxonomySection
from cms.content.model import ALIASES, FIELD_TYPE_ALIASES, FIELD_TYPES
from cms.content.query import BASE_FIELDS, FIELD_ALIASES, OPERATORS, PARAMS
from cms.events.bus import EVENTS
from cms.events.subscriptions import EVENT_ALIASES

DOCS = Path(__file__).resolve().parent.parent / "docs"
CONFIG_SECTIONS: dict[str, type] = {**SECTIONS, "taxonomies.<name>": TaxonomySection}
TYPE_NAMES = {
    "str": "string",
    "int": "integer",
    "bool": "boolean",
    "float": "float",
    "list[str]": "array of strings",
    "list[int]": "array of integers",
}


def _read(name: str) -> str:
    path = DOCS / name
    assert path.is_file(), f"docs/{name} is missing"
    return path.read_text(encoding="utf-8")


def _sections(text: str) -> dict[str, str]:
    """`## [name]` / `### name` heading (brackets stripped) -> the text up to the next such heading."""
    parts = re.split(r"^###? +(.+?) *$", text, flags=re.MULTILINE)
    return {heading.strip("[] "): body for heading, body in zip(parts[1::2], parts[2::2], strict=True)}


def _table_rows(text: str) -> dict[str, dict[str, str]]:
    """Rows of `| key | type | default | description |` tables, by key (backticks stripped)."""
    rows: dict[str, dict[str, str]] = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.lstrip().startswith("|") or len(cells) != 4 or cells[0] in ("key", "") or set(cells[0]) <= {"-"}:
            continue
        key, type_, default, description = cells
        rows[key.strip("`")] = {"type": type_, "default": default.strip("`"), "description": description}
    return rows


def _default(f: dataclasses.Field[Any]) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]


# -- docs/config.md ------------------------------------------------------------------------


def test_config_documents_exactly_the_sections() -> None:
    documented = set(_sections(_read("config.md")))
    expected = {*CONFIG_SECTIONS, "webhooks"}
    assert not expected - documented, f"docs/config.md has no `## [section]` for: {sorted(expected - documented)}"
    assert not documented - expected, f"docs/config.md documents unknown sections: {sorted(documented - expected)}"


def test_config_webhooks_lists_every_key() -> None:
    section = _sections(_read("config.md")).get("webhooks", "")
    assert "docs/webhooks.md" in section
    for key in ("name", "url", "events", "content_types", "secret", "enabled"):
        assert f"`{key}`" in section, f"docs/config.md [[webhooks]] does not mention `{key}`"


@pytest.mark.parametrize("section", list(CONFIG_SECTIONS))
def test_config_table_lists_exactly_the_fields(section: str) -> None:
    rows = _table_rows(_sections(_read("config.md")).get(section, ""))
    fields = {f.name for f in dataclasses.fields(CONFIG_SECTIONS[section])}
    assert not fields - set(rows), f"docs/config.md [{section}] is missing: {sorted(fields - set(rows))}"
    assert not set(rows) - fields, f"docs/config.md [{section}] documents unknown keys: {sorted(set(rows) - fields)}"


@pytest.mark.parametrize(
    ("section", "name"), [(s, f.name) for s, cls in CONFIG_SECTIONS.items() for f in dataclasses.fields(cls)]
)
def test_config_row_matches_the_code(section: str, name: str) -> None:
    row = _table_rows(_sections(_read("config.md")).get(section, "")).get(name)
    assert row is not None, f"docs/config.md [{section}] has no row for {name}"
    f = next(f for f in dataclasses.fields(CONFIG_SECTIONS[section]) if f.name == name)
    try:
        documented = tomllib.loads(f"v = {row['default']}")["v"]
    except tomllib.TOMLDecodeError:
        pytest.fail(f"[{section}] {name}: default {row['default']!r} in docs/config.md is not a TOML value")
    code = _default(f)
    assert documented == code and type(documented) is type(code), (
        f"[{section}] {name}: docs/config.md says default {row['default']}, the code has {code!r}"
    )
    assert row["type"] == TYPE_NAMES[str(f.type)], (
        f"[{section}] {name}: docs/config.md says type {row['type']!r}, the code has {f.type}"
    )
    assert f.metadata["help"] in row["description"], (
        f"[{section}] {name}: the description in docs/config.md lacks the help text {f.metadata['help']!r}"
    )


# -- docs/querying.md ----------------------------------------------------------------------


@pytest.mark.parametrize("operator", OPERATORS)
def test_querying_documents_operator(operator: str) -> None:
    assert f"`{operator}`" in _read("querying.md"), f"docs/querying.md does not document operator {operator}"


@pytest.mark.parametrize("param", PARAMS)
def test_querying_documents_parameter(param: str) -> None:
    assert f"| `{param}` |" in _read("querying.md"), f"docs/querying.md has no table row for parameter {param}"


@pytest.mark.parametrize("name", [*BASE_FIELDS, *FIELD_ALIASES])
def test_querying_documents_field_name(name: str) -> None:
    assert f"`{name}`" in _read("querying.md"), f"docs/querying.md does not name field or alias {name}"


# -- docs/content-format.md ----------------------------------------------------------------


@pytest.mark.parametrize("field_type", sorted(FIELD_TYPES))
def test_content_format_documents_field_type(field_type: str) -> None:
    assert f"| `{field_type}` |" in _read("content-format.md"), (
        f"docs/content-format.md has no table row for field type {field_type}"
    )


@pytest.mark.parametrize("alias", sorted(FIELD_TYPE_ALIASES))
def test_content_format_documents_field_type_alias(alias: str) -> None:
    assert f"`{alias}`" in _read("content-format.md"), f"docs/content-format.md does not name field type alias {alias}"


@pytest.mark.parametrize("key", sorted({k for names in ALIASES.values() for k in names}))
def test_content_format_documents_frontmatter_spelling(key: str) -> None:
    assert f"`{key}`" in _read("content-format.md"), f"docs/content-format.md does not name frontmatter key {key}"


# -- docs/webhooks.md ---------------------------------------------------------------------


def _documented_events() -> set[str]:
    """The event names in the first column of the table under `## Events` of docs/webhooks.md."""
    names: set[str] = set()
    for line in _sections(_read("webhooks.md")).get("Events", "").splitlines():
        cells = line.strip().strip("|").split("|")
        if line.lstrip().startswith("|") and len(cells) > 1:
            names.update(re.findall(r"`([a-z]+\.[a-z]+)`", cells[0]))
    return names


def test_webhooks_documents_exactly_the_events() -> None:
    documented = _documented_events()
    assert not set(EVENTS) - documented, f"docs/webhooks.md does not list events: {sorted(set(EVENTS) - documented)}"
    assert not documented - set(EVENTS), f"docs/webhooks.md lists unknown events: {sorted(documented - set(EVENTS))}"


@pytest.mark.parametrize("alias", sorted(EVENT_ALIASES))
def test_webhooks_documents_event_alias(alias: str) -> None:
    assert f"`{alias}`" in _sections(_read("webhooks.md")).get("Events", ""), (
        f"docs/webhooks.md does not name the event alias {alias}"
    )


# -- docs/cli.md ---------------------------------------------------------------------------


def _commands(group: click.Group, prefix: str = "cms") -> dict[str, click.Command]:
    """Every command and subcommand by its full name (`cms keys create`)."""
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        found[f"{prefix} {name}"] = command
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{prefix} {name}"))
    return found


@pytest.mark.parametrize("name", sorted(_commands(main)))
def test_cli_documents_command(name: str) -> None:
    sections = _sections(_read("cli.md"))
    assert name in sections, f"docs/cli.md has no `## {name}` heading"
    options = [o for p in _commands(main)[name].params if isinstance(p, click.Option) for o in p.opts]
    missing = [o for o in options if o not in sections[name]]
    assert not missing, f"docs/cli.md `{name}` does not mention: {missing}"
