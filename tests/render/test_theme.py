"""`partial_cached`: a fragment rendered once per build for the same values, and only then."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from jinja2 import DictLoader, Environment, select_autoescape
from markupsafe import Markup

from cms.render.theme import PartialCache, make_environment
from tests.render import copy_demo


def counting_environment() -> tuple[Environment, list[str]]:
    calls: list[str] = []
    env = Environment(loader=DictLoader({"card.html": "<b>{{ item.title }}</b>{{ level }}{{ seen() }}"}))
    env.autoescape = select_autoescape(default=True)
    env.globals["seen"] = lambda: calls.append("x") or ""
    return env, calls


def test_the_same_values_render_once() -> None:
    env, calls = counting_environment()
    partial = PartialCache(env)
    item = {"title": "A & B"}
    first = partial("card.html", item=item, level=3)
    assert partial("card.html", item=item, level=3) is first
    assert isinstance(first, Markup) and first == "<b>A &amp; B</b>3"
    assert len(calls) == 1


def test_other_values_render_again() -> None:
    env, calls = counting_environment()
    partial = PartialCache(env)
    one, other = {"title": "one"}, {"title": "one"}  # equal, but another object: another view
    assert partial("card.html", item=one, level=3) == "<b>one</b>3"
    assert partial("card.html", item=other, level=3) == "<b>one</b>3"
    assert partial("card.html", item=one, level=2) == "<b>one</b>2"
    assert len(calls) == 3


def test_a_kept_value_cannot_lend_its_identity_to_a_new_one() -> None:
    """Values are told apart by id(): the cache keeps them alive so a new object never gets an old id."""
    env, calls = counting_environment()
    partial = PartialCache(env)
    for n in range(200):
        assert partial("card.html", item={"title": f"t{n}"}, level=1) == f"<b>t{n}</b>1"
    assert len(calls) == 200


def test_the_calling_page_variables_are_not_seen() -> None:
    env = Environment(loader=DictLoader({"p.html": "{{ title is defined }}", "page.html": "{{ partial('p.html') }}"}))
    partial = PartialCache(env)
    assert env.get_template("page.html").render(title="x", partial=partial) == "False"


def test_longdate_is_the_local_day_without_a_leading_zero(tmp_path: Path) -> None:
    site = copy_demo(tmp_path / "site")
    assert str(site.tz) == "Europe/Berlin"
    env = make_environment(site)
    late_utc = datetime(2026, 3, 4, 23, 30, tzinfo=UTC)  # already the 5th in Berlin
    assert env.from_string("{{ d|longdate }}").render(d=late_utc) == "5 March 2026"
    assert env.from_string("{{ d|longdate }}").render(d=date(2026, 11, 24)) == "24 November 2026"
    assert env.from_string("{{ d|longdate }}").render(d=None) == ""
