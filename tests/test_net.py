"""Outbound targets: link-local and metadata addresses are never reached; private ones only when named."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from cms.config import NetworkSection, Site
from cms.errors import ConfigError, Invalid
from cms.events.webhooks import Webhooks
from cms.media.fetch import localize
from cms.net import BlockedTarget, is_forbidden, is_public, vet_url
from cms.state import State

METADATA_FORMS = [
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack... instance metadata
    "169.254.0.1",
    "fe80::1",
    "fe80::1%eth0",
    "fd00:ec2::254",  # AWS over IPv6
    "100.100.100.200",  # Alibaba Cloud
    "::ffff:169.254.169.254",  # IPv4-mapped
    "::ffff:a9fe:a9fe",
    "64:ff9b::a9fe:a9fe",  # NAT64 well-known prefix
    "64:ff9b::169.254.169.254",
    "64:ff9b:1::a9fe:a9fe",  # NAT64 local-use prefix
    "2002:a9fe:a9fe::1",  # 6to4
    "::169.254.169.254",  # IPv4-compatible
]
URL_FORMS = [
    "http://169.254.169.254/latest/meta-data/",
    "http://2852039166/",  # 169.254.169.254 as one number
    "http://0xa9.0xfe.0xa9.0xfe/",
    "http://0251.0376.0251.0376/",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[fe80::1]/",
]

PRIVATE = NetworkSection(allow_private_addresses=True)


def resolver_for(table: dict[str, list[str]]) -> Callable[[str, int], list[str]]:
    def resolve(host: str, port: int) -> list[str]:
        host = host.rstrip(".")  # as DNS does: "name." is the fully qualified spelling of "name"
        if host not in table:
            raise BlockedTarget(f"cannot resolve {host!r}")
        return table[host]

    return resolve


@pytest.mark.parametrize("address", METADATA_FORMS)
def test_metadata_and_link_local_addresses_are_forbidden_in_every_form(address: str) -> None:
    assert is_forbidden(address)
    assert not is_public(address)


@pytest.mark.parametrize("address", ["127.0.0.1", "10.0.0.5", "192.168.1.1", "::1", "fd12::1", "93.184.215.14"])
def test_ordinary_addresses_are_not_forbidden(address: str) -> None:
    assert not is_forbidden(address)


@pytest.mark.parametrize("url", URL_FORMS)
@pytest.mark.parametrize("allow_private", [False, True])
def test_metadata_urls_are_refused_even_with_every_opening(url: str, allow_private: bool) -> None:
    opened = ("169.254.169.254", "fd00:ec2::254", "fe80::1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe")
    with pytest.raises(BlockedTarget):
        vet_url(
            url,
            NetworkSection(allow_private_addresses=allow_private, allowed_hosts=[*opened]),
            resolver=resolver_for({}),
        )


@pytest.mark.parametrize("answer", ["169.254.169.254", "fd00:ec2::254", "::ffff:169.254.169.254"])
def test_a_name_resolving_to_metadata_is_refused_even_when_named(answer: str) -> None:
    resolve = resolver_for({"metadata.google.internal": [answer], "evil.test": ["93.184.215.14", answer]})
    for host in ("metadata.google.internal", "evil.test"):
        with pytest.raises(BlockedTarget, match="link-local or cloud metadata"):
            vet_url(
                f"http://{host}/", NetworkSection(allow_private_addresses=True, allowed_hosts=[host]), resolver=resolve
            )


def test_allow_private_still_opens_loopback_and_private_ranges_on_any_port() -> None:
    assert vet_url("http://127.0.0.1:8123/hook", PRIVATE).address == "127.0.0.1"
    assert vet_url("http://10.0.0.5:5678/", PRIVATE).address == "10.0.0.5"


def test_private_addresses_are_refused_unless_named() -> None:
    resolve = resolver_for({"n8n.internal": ["10.1.2.3"], "other.internal": ["10.1.2.4"]})
    for url in ("http://10.0.0.5/", "http://n8n.internal/", "http://127.0.0.1/"):
        with pytest.raises(BlockedTarget, match="allowed_hosts"):
            vet_url(url, resolver=resolve)


def test_allowed_hosts_opens_exactly_the_named_hosts_on_any_port() -> None:
    resolve = resolver_for({"n8n.internal": ["10.1.2.3"], "x.n8n.internal": ["10.1.2.9"], "db.internal": ["10.0.0.5"]})
    named = ("10.0.0.5", "N8N.internal.")
    assert (
        vet_url("http://10.0.0.5:5678/hook", NetworkSection(allowed_hosts=[*named]), resolver=resolve).address
        == "10.0.0.5"
    )
    assert (
        vet_url("http://n8n.internal:5678/", NetworkSection(allowed_hosts=[*named]), resolver=resolve).address
        == "10.1.2.3"
    )
    assert (
        vet_url("http://N8N.INTERNAL./", NetworkSection(allowed_hosts=[*named]), resolver=resolve).address == "10.1.2.3"
    )
    # a name resolving only to named addresses is let through on the usual ports
    assert (
        vet_url("http://db.internal/", NetworkSection(allowed_hosts=[*named]), resolver=resolve).address == "10.0.0.5"
    )
    for url in ("http://10.0.0.6/", "http://x.n8n.internal/", "http://127.0.0.1:5678/", "http://db.internal:5678/"):
        with pytest.raises(BlockedTarget):
            vet_url(url, NetworkSection(allowed_hosts=[*named]), resolver=resolve)


def test_a_named_address_is_matched_in_its_other_spellings() -> None:
    assert vet_url("http://0x0a.0.0.5/", NetworkSection(allowed_hosts=["10.0.0.5"])).address == "10.0.0.5"
    assert vet_url("http://[fd12:0::1]:8080/", NetworkSection(allowed_hosts=["fd12::1"])).address == "fd12::1"


def test_public_targets_need_no_opening() -> None:
    assert vet_url("https://93.184.215.14/hook").port == 443
    with pytest.raises(BlockedTarget, match="port"):
        vet_url("https://93.184.215.14:8443/hook")


# -- [network] allowed_hosts in cms.toml -----------------------------------------------------------


@pytest.mark.parametrize("entry", ["http://n8n.internal", "10.0.0.0/8", "*.internal", "n8n.internal:5678", "a b", ""])
def test_allowed_hosts_entries_must_be_bare_names_or_addresses(tmp_path: object, entry: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Site.from_dict(tmp_path, {"network": {"allowed_hosts": [entry]}})  # type: ignore[arg-type]
    assert caught.value.key == "network.allowed_hosts"


def test_allowed_hosts_accepts_names_and_addresses(tmp_path: object) -> None:
    hosts = ["n8n.internal", "10.0.0.5", "fd12::1", "[fd12::2]", "receiver"]
    site = Site.from_dict(tmp_path, {"network": {"allowed_hosts": hosts}})  # type: ignore[arg-type]
    assert site.network.allowed_hosts == hosts


# -- the callers: webhooks and image localization ----------------------------------------------------


def _site(make_site: Callable[..., Site], network: str) -> Site:
    return make_site(config=f'[site]\ntitle = "T"\n\n[network]\n{network}\n')


@pytest.mark.parametrize(
    "network", ["allow_private_addresses = true", 'allowed_hosts = ["169.254.169.254", "fd00:ec2::254"]']
)
def test_webhooks_refuse_metadata_urls_whatever_the_settings(make_site: Callable[..., Site], network: str) -> None:
    site = _site(make_site, network)
    state = State(site.state_dir)
    try:
        hooks = Webhooks(site, state, resolver=resolver_for({}))
        for url in ("http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/"):
            with pytest.raises(Invalid) as caught:
                hooks.create({"name": "steal", "url": url})
            assert list(caught.value.details) == ["url"]
    finally:
        state.close()


def test_webhooks_reach_a_named_private_receiver(make_site: Callable[..., Site]) -> None:
    site = _site(make_site, 'allowed_hosts = ["n8n.internal"]')
    state = State(site.state_dir)
    try:
        hooks = Webhooks(
            site, state, resolver=resolver_for({"n8n.internal": ["10.1.2.3"], "db.internal": ["10.9.9.9"]})
        )
        hook, _ = hooks.create({"name": "n8n", "url": "http://n8n.internal:5678/webhook/cms"})
        assert hook.url == "http://n8n.internal:5678/webhook/cms"
        with pytest.raises(Invalid):
            hooks.create({"name": "db", "url": "http://db.internal/"})
    finally:
        state.close()


def test_localization_never_fetches_metadata_even_with_private_addresses_allowed() -> None:
    def no_request(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"a request was sent to {request.url}")

    content = "![x](http://169.254.169.254/latest/meta-data/iam.png) ![y](http://[fd00:ec2::254]/a.png)"
    new, report = localize(
        content,
        lambda data, name, alt: pytest.fail("nothing may be ingested"),
        network=NetworkSection(allow_private_addresses=True, allowed_hosts=["169.254.169.254"]),
        transport=httpx.MockTransport(no_request),
    )
    assert new == content
    assert [entry["status"] for entry in report] == ["failed", "failed"]
    assert all(entry["error"].startswith("refused") for entry in report)


def test_public_targets_off_keeps_outbound_requests_to_named_hosts() -> None:
    closed = NetworkSection(allowed_hosts=["127.0.0.1"], public_targets=False)
    resolve = resolver_for({"hooks.example": ["93.184.215.14"], "local.test": ["127.0.0.1"]})
    assert vet_url("http://127.0.0.1:8123/hook", closed).address == "127.0.0.1"
    assert vet_url("http://local.test/", closed, resolver=resolve).address == "127.0.0.1"
    for url in ("http://93.184.215.14/", "http://hooks.example/", "http://[2606:4700::1111]/"):
        with pytest.raises(BlockedTarget, match="public_targets"):
            vet_url(url, closed, resolver=resolve)
    assert vet_url("http://hooks.example/", resolver=resolve).address == "93.184.215.14"  # the default is open
