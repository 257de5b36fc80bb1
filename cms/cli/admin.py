"""Commands over the local state and the install: `keys`, `state` and `doctor`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from cms.cli.common import EXIT_PROBLEMS, handle_errors, site_of, site_option


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed in .cms/state.db)."""


def _keys(site_path: str | None) -> Any:
    from cms.auth import Keys
    from cms.state import State

    site = site_of(site_path)
    return Keys(State(site.state_dir))


@keys.command("create")
@click.option("--name", required=True, help="Who or what uses the key.")
@click.option("--scopes", default="read", show_default=True, help="Comma-separated: read, write, delete, admin.")
@click.option("--expires", default=None, help="Expiry as an ISO 8601 date-time (e.g. 2027-01-01T00:00:00Z).")
@click.option("--with-secret", is_flag=True, help="Also require an X-API-Secret header (key + secret pair).")
@click.option("--types", default=None, help="Comma-separated content types the key may touch (default: all).")
@site_option
@handle_errors
def keys_create(
    name: str, scopes: str, expires: str | None, with_secret: bool, types: str | None, site_path: str | None
) -> None:
    """Create a key and print it once."""
    from datetime import UTC

    from cms.content.model import to_datetime
    from cms.errors import BadRequest

    expires_at = None
    if expires:
        expires_at = to_datetime(expires, UTC)
        if expires_at is None:
            raise BadRequest(f"--expires {expires!r} is not an ISO 8601 date-time")
    issued = _keys(site_path).create(
        name,
        scopes.split(","),
        expires_at=expires_at,
        with_secret=with_secret,
        types=[t.strip() for t in types.split(",") if t.strip()] if types else None,
    )
    click.echo(f"id:     {issued.key.id}")
    click.echo(f"scopes: {', '.join(sorted(issued.key.scopes))}")
    click.echo(f"key:    {issued.token}")
    if issued.secret:
        click.echo(f"secret: {issued.secret}")
    click.echo("Store the key now: it is shown only once.", err=True)


@keys.command("list")
@site_option
@handle_errors
def keys_list(site_path: str | None) -> None:
    """List keys (never their secrets)."""
    rows = _keys(site_path).list()
    if not rows:
        click.echo("no keys; create one with `cms keys create --name NAME --scopes read`")
        return
    click.echo(f"{'id':<14}{'name':<24}{'scopes':<28}{'state':<10}{'expires':<22}last used")
    for key in rows:
        data = key.as_dict()
        state = "enabled" if key.enabled else "disabled"
        click.echo(
            f"{key.id:<14}{key.name[:22]:<24}{','.join(data['scopes']):<28}{state:<10}"
            f"{data['expires_at'] or '-':<22}{data['last_used_at'] or '-'}"
        )


@keys.command("revoke")
@click.argument("key_id")
@site_option
@handle_errors
def keys_revoke(key_id: str, site_path: str | None) -> None:
    """Delete a key for good."""
    _keys(site_path).revoke(key_id)
    click.echo(f"revoked {key_id}")


@keys.command("show")
@click.argument("key_id")
@site_option
@handle_errors
def keys_show(key_id: str, site_path: str | None) -> None:
    """Show one key's settings (never its secret)."""
    for name, value in _keys(site_path).get(key_id).as_dict().items():
        click.echo(f"{name + ':':<14}{value if value is not None else '-'}")


@keys.command("disable")
@click.argument("key_id")
@site_option
@handle_errors
def keys_disable(key_id: str, site_path: str | None) -> None:
    """Disable a key (requests with it get 401 KEY_DISABLED) until enabled again."""
    _keys(site_path).set_enabled(key_id, False)
    click.echo(f"disabled {key_id}")


@keys.command("enable")
@click.argument("key_id")
@site_option
@handle_errors
def keys_enable(key_id: str, site_path: str | None) -> None:
    """Enable a disabled key."""
    _keys(site_path).set_enabled(key_id, True)
    click.echo(f"enabled {key_id}")


@keys.command("rotate")
@click.argument("key_id")
@site_option
@handle_errors
def keys_rotate(key_id: str, site_path: str | None) -> None:
    """Issue a new token for a key; the old token stops working at once."""
    issued = _keys(site_path).rotate(key_id)
    click.echo(f"key:    {issued.token}")
    if issued.secret:
        click.echo(f"secret: {issued.secret}")
    click.echo("Store the key now: it is shown only once.", err=True)


@click.group()
def state() -> None:
    """Back up and restore the site's local state in .cms/ (keys, webhooks, outbox, audit log)."""


@state.command("backup")
@click.argument("file", type=click.Path(dir_okay=False))
@site_option
@handle_errors
def state_backup(file: str, site_path: str | None) -> None:
    """Write a consistent copy of every state database to FILE (a zip); safe while `cms serve` runs."""
    from cms.backup import backup

    manifest = backup(site_of(site_path), Path(file))
    for entry in manifest.files:
        click.echo(f"{entry.name:<16}{entry.bytes:>12,} bytes")
    click.echo(f"backed up {len(manifest.files)} file(s) to {file} (format {manifest.format_version})")


@state.command("restore")
@click.argument("file", type=click.Path(dir_okay=False))
@site_option
@handle_errors
def state_restore(file: str, site_path: str | None) -> None:
    """Replace .cms/ state with the backup FILE (old state kept in .cms/replaced-<time>/); stop the server first."""
    from cms.backup import restore

    done = restore(site_of(site_path), Path(file))
    for entry in done.manifest.files:
        click.echo(f"restored {entry.name}")
    if done.replaced:
        click.echo(f"the state it replaced is in {done.replaced}")
    click.echo(f"restored the state of {done.manifest.created_at} (cms {done.manifest.cms_version})")


@click.command()
@click.option("--strict", is_flag=True, help="Exit 1 when anything is missing or differs from the lock.")
def doctor(strict: bool) -> None:
    """Versions in use, optional features, and the command that fixes what is missing."""
    from cms import doctor as diagnosis

    findings = diagnosis.diagnose()
    width = max(len(f.name) for f in findings)
    marks = {diagnosis.OK: "ok", diagnosis.MISSING: "MISSING", diagnosis.DIFFERS: "DIFFERS"}
    for finding in findings:
        click.echo(f"{finding.name:<{width}}  {marks[finding.status]:<7}  {finding.detail}")
    fixes = sorted({f.fix for f in findings if f.status != diagnosis.OK and f.fix})
    if fixes:
        click.echo("\nto fix:")
        for fix in fixes:
            click.echo(f"  {fix}")
    if strict and any(f.status != diagnosis.OK for f in findings):
        sys.exit(EXIT_PROBLEMS)
