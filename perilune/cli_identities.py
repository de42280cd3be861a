"""``perilune identities``: link JWT principals (issuer + subject) to accounts, list, unlink.

A JWT acts for an account only when the operator says so: here, with ``POST /admin/identities``, or
with ``[jwt] account_map`` in the config (see perilune.gateway.identities).
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from perilune.store.identities import IdentityStore

identities_app = typer.Typer(no_args_is_help=True,
                             help="JWT identities (issuer + subject): link to an account, list, unlink.")

HomeOpt = Annotated[str | None, typer.Option("--home", envvar="PERILUNE_HOME", help="Data directory.")]
ConfigOpt = Annotated[str | None, typer.Option("--config", envvar="PERILUNE_CONFIG", help="TOML config file.")]


def _identities(config: str | None, home: str | None) -> IdentityStore:
    from perilune.cli import _settings
    from perilune.store.db import Database
    from perilune.store.identities import IdentityStore

    db = Database(_settings(config, home=home).db_url)
    db.migrate()
    return IdentityStore(db)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


@identities_app.command("link")
def link(
    account: Annotated[str, typer.Argument(help="The account the identity acts for.")],
    subject: Annotated[str, typer.Option("--subject", help="The token's `sub` claim.")],
    issuer: Annotated[str, typer.Option("--issuer", help="The token's `iss` claim (empty: none).")] = "",
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Let tokens with this issuer and subject act for ACCOUNT (re-linking moves them)."""
    store = _identities(config, home)
    try:
        rec = store.link(issuer, subject, account, actor="cli")
    except LookupError:
        _fail(f"no account {account!r}")
        return
    except ValueError as e:
        _fail(str(e))
        return
    typer.echo(f"linked {rec.id}: issuer={rec.issuer!r} subject={rec.subject!r} -> {rec.account_id}")


@identities_app.command("unlink")
def unlink(identity_id: Annotated[str, typer.Argument(help="An identity id (idn_...).")],
           home: HomeOpt = None, config: ConfigOpt = None) -> None:
    """Stop tokens of this identity from acting for its account (within about a second everywhere)."""
    rec = _identities(config, home).unlink(identity_id)
    if rec is None:
        _fail(f"no identity {identity_id!r}")
        return
    typer.echo(f"unlinked {rec.id}")


@identities_app.command("list")
def list_identities(
    account: Annotated[str | None, typer.Option("--account", help="Only this account.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    home: HomeOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Linked identities (full ids)."""
    recs = _identities(config, home).list_links(account)
    if as_json:
        typer.echo(json.dumps([r.public() for r in recs]))
        return
    for r in recs:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(r.created_at))
        typer.echo(f"{r.id}\t{r.account_id}\t{r.issuer or '-'}\t{r.subject}\t{when}")
