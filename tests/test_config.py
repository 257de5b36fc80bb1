"""cms.toml -> Site: defaults, the bundled file, and errors that name the key and the value."""

from __future__ import annotations

import dataclasses
import textwrap
import tomllib
from pathlib import Path
from typing import Any

import pytest

from cms.config import Site
from cms.errors import ConfigError
from tests.conftest import REPO, MakeSite


def load(tmp_path: Path, toml: str) -> Site:
    (tmp_path / "cms.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
    return Site.load(tmp_path)


def test_defaults_without_cms_toml(tmp_path: Path) -> None:
    site = Site.load(tmp_path)
    assert site.root == tmp_path.resolve()
    assert site.site.title == "My site"
    assert site.site.timezone == "UTC"
    assert site.defaults.per_page == 20
    assert site.defaults.max_per_page == 100
    assert site.api.require_if_match is False
    assert site.content_dir == tmp_path.resolve() / "content"
    assert site.state_dir == tmp_path.resolve() / ".cms"
    assert site.taxonomies == {}
    assert site.taxonomy_names == ("categories", "tags")
    assert str(site.tz) == "UTC"


def test_the_repositorys_cms_toml_loads() -> None:
    site = Site.load(REPO)
    assert site.site.title == "Cinder & Crema"
    assert site.site.timezone == "Europe/Berlin"
    assert site.defaults.per_page == 10
    assert site.defaults.author == "mara-okafor"
    assert site.content_dir == REPO / "content"


def test_site_is_frozen(tmp_path: Path) -> None:
    site = Site.load(tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        site.root = tmp_path  # type: ignore[misc]


def test_values_are_read(tmp_path: Path) -> None:
    site = load(
        tmp_path,
        """
        [site]
        title = "T"
        timezone = "America/New_York"
        [defaults]
        per_page = 5
        max_per_page = 50
        [api]
        require_if_match = true
        public_types = ["posts"]
        [paths]
        output = "dist"
        """,
    )
    assert (site.site.title, str(site.tz)) == ("T", "America/New_York")
    assert (site.defaults.per_page, site.defaults.max_per_page) == (5, 50)
    assert site.api.require_if_match is True
    assert site.api.public_types == ["posts"]
    assert site.output_dir == tmp_path.resolve() / "dist"


def test_taxonomies_table(tmp_path: Path) -> None:
    site = load(
        tmp_path,
        """
        [taxonomies.series]
        label = "Series"
        hierarchical = true
        types = ["posts"]

        [taxonomies.regions]
        label = "Regions"
        """,
    )
    assert set(site.taxonomies) == {"series", "regions"}
    assert site.taxonomies["series"].label == "Series"
    assert site.taxonomies["series"].hierarchical is True
    assert site.taxonomies["series"].types == ["posts"]
    assert site.taxonomies["regions"].types == []
    assert site.taxonomy_names == ("categories", "tags", "series", "regions")
    assert "series" in site.reserved_folders


def test_webhooks_array(tmp_path: Path) -> None:
    site = load(tmp_path, '[[webhooks]]\nurl = "https://example.com/hook"\nevents = ["post.created"]\n')
    assert site.webhooks == ({"url": "https://example.com/hook", "events": ["post.created"]},)


@pytest.mark.parametrize(
    ("toml", "key", "value"),
    [
        ("[nope]\nx = 1\n", "nope", None),
        ("[site]\ncolour = 'red'\n", "site.colour", None),
        ("[defaults]\nper_page = '10'\n", "defaults.per_page", "10"),
        ("[defaults]\nper_page = true\n", "defaults.per_page", True),
        ("[defaults]\nper_page = 2.5\n", "defaults.per_page", 2.5),
        ("[api]\nrequire_if_match = 'yes'\n", "api.require_if_match", "yes"),
        ("[api]\npublic_types = ['posts', 1]\n", "api.public_types", ["posts", 1]),
        ("[site]\ntitle = 7\n", "site.title", 7),
        ("[site]\ntimezone = 'Mars/Olympus_Mons'\n", "site.timezone", "Mars/Olympus_Mons"),
        ("[site]\ntimezone = '../../etc/passwd'\n", "site.timezone", "../../etc/passwd"),
        ("[site]\ntimezone = ''\n", "site.timezone", ""),
        ("[paths]\ncontent = '/etc'\n", "paths.content", "/etc"),
        ("[paths]\ncontent = '../elsewhere'\n", "paths.content", "../elsewhere"),
        ("[paths]\nuploads = 'media/../../up'\n", "paths.uploads", "media/../../up"),
        ("[paths]\ncontent = '.'\n", "paths.content", "."),
        ("[paths]\noutput = 'content'\n", "paths.output", "content"),
        ("[paths]\nstate = 'content/.cms'\n", "paths.state", "content/.cms"),
        ("[defaults]\nper_page = 101\n", "defaults.per_page", 101),
        ("[defaults]\nper_page = 30\nmax_per_page = 20\n", "defaults.per_page", 30),
        ("[defaults]\nper_page = 0\n", "defaults.per_page", 0),
        ("[api]\nmax_json_bytes = -1\n", "api.max_json_bytes", -1),
        ("[render]\nraw_html = 'yes'\n", "render.raw_html", "yes"),
        ("[taxonomies.tags]\nlabel = 'Tags'\n", "taxonomies.tags", "tags"),
        ("[taxonomies.'../up']\nlabel = 'x'\n", "taxonomies.../up", "../up"),
        ("[taxonomies.'Big Name']\n", "taxonomies.Big Name", "Big Name"),
        ("[taxonomies]\nseries = 1\n", "taxonomies.series", None),
        ("site = 'x'\n", "site", None),
    ],
)
def test_bad_values_name_the_key_and_value(tmp_path: Path, toml: str, key: str, value: Any) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml)
    err = info.value
    assert err.key == key
    assert key.split(".")[-1] in err.message
    if value is not None:
        assert err.value == value
        assert repr(value) in err.message or str(value) in err.message
    assert err.details == {"key": key}


def test_toml_syntax_error_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "[site\ntitle = 'x'\n")
    # The file is the project's part of the message; where in it (the line) is tomllib's wording.
    assert info.value.message.startswith(f"{tmp_path.resolve() / 'cms.toml'}: ")
    assert isinstance(info.value.__cause__, tomllib.TOMLDecodeError)


def test_invalid_utf8_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "cms.toml").write_bytes(b"[site]\ntitle = '\xff'\n")
    with pytest.raises(ConfigError):
        Site.load(tmp_path)


def test_discover_walks_up_from_a_subfolder(make_site: MakeSite) -> None:
    site = make_site({"content/posts/2024/a.md": "---\ntitle: A\n---\n"})
    deep = site.content_dir / "posts" / "2024"
    found = Site.discover(deep)
    assert found.root == site.root
    assert found.site.title == "Test"


def test_discover_uses_the_nearest_cms_toml(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    inner = outer / "sites" / "inner"
    (inner / "content").mkdir(parents=True)
    (outer / "cms.toml").write_text('[site]\ntitle = "Outer"\n')
    (inner / "cms.toml").write_text('[site]\ntitle = "Inner"\n')
    assert Site.discover(inner / "content").site.title == "Inner"
    assert Site.discover(outer / "sites").site.title == "Outer"


def test_discover_without_cms_toml(tmp_path: Path) -> None:
    if any((p / "cms.toml").exists() for p in tmp_path.parents):
        pytest.skip("a cms.toml above the temp folder")
    with pytest.raises(ConfigError) as info:
        Site.discover(tmp_path)
    assert "cms.toml" in info.value.message


def test_discover_ignores_a_folder_named_cms_toml(tmp_path: Path) -> None:
    (tmp_path / "cms.toml").write_text('[site]\ntitle = "Real"\n')
    sub = tmp_path / "sub"
    (sub / "cms.toml").mkdir(parents=True)
    assert Site.discover(sub).site.title == "Real"
