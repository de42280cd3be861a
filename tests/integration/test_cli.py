"""The CLI as scripts use it: --json on every listing, full ids, signed amounts, limits that change only
what is given, --version, plain help, and a non-zero exit (with one line on stderr) on every error."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import perilune
from tests.integration.test_first_run import clean_env


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


def cli(home: Path, *args: str, code: int = 0) -> str:
    """The command in this process (an interpreter start-up per call would make this module slow);
    test_version_and_plain_help and test_startup run the real executable."""
    from typer.testing import CliRunner

    from perilune.cli import app

    r = CliRunner().invoke(app, [*args, "--home", str(home)], env={"PERILUNE_CONFIG": ""})
    assert r.exit_code == code, (args, r.exit_code, r.stdout, r.stderr, r.exception)
    if code:
        assert r.exception is None or isinstance(r.exception, SystemExit), r.exception
        assert r.stderr.startswith("error: ") and len(r.stderr.strip().splitlines()) == 1, r.stderr
        return r.stderr
    return r.stdout


def test_version_and_plain_help() -> None:
    r = perilune("--version", env=clean_env())
    assert r.stdout.strip().startswith("perilune 0.") and r.returncode == 0
    for cmd in (("keys", "create"), ("serve",), ("limits", "set"), ("accounts", "adjust")):
        text = perilune(*cmd, "--help", env=clean_env()).stdout
        assert "<bool>" not in text and "--help" in text, text
    text = perilune("keys", "create", "--help", env=clean_env()).stdout
    assert "  --admin " in text and "--home DIR" in text
    assert "{ACCOUNT_ID} {AMOUNT_USD}" in perilune("accounts", "adjust", "--help", env=clean_env()).stdout


def test_keys_list_json_full_ids_and_revoke_twice(home: Path) -> None:
    key_ids = []
    for name in ("alpha", "beta"):
        r = perilune("keys", "create", "--name", name, "--home", str(home), env=clean_env())
        key_ids.append(r.stderr.split("key ")[1].split()[0])
        assert r.stdout.strip().startswith("pk_live_")
    listed = json.loads(cli(home, "keys", "list", "--json"))
    assert [k["id"] for k in listed] == key_ids
    assert {k["name"] for k in listed} == {"alpha", "beta"} and all(k["state"] == "active" for k in listed)
    assert all("secret" not in k and "key_hash" not in k for k in listed)
    table = cli(home, "keys", "list")
    assert table.splitlines()[0].split() == ["id", "account_id", "name", "prefix", "role", "state", "created",
                                             "expires", "revoked"]
    assert all(k in table for k in key_ids)  # whole ids, never cut to fit a terminal

    out = json.loads(cli(home, "keys", "revoke", key_ids[0], "--json"))
    assert out["id"] == key_ids[0] and out["state"] == "revoked"
    assert "already revoked" in cli(home, "keys", "revoke", key_ids[0], code=1)
    assert "no key 'key_nope'" in cli(home, "keys", "revoke", "key_nope", code=1)
    states = {k["id"]: k["state"] for k in json.loads(cli(home, "keys", "list", "--json"))}
    assert states == {key_ids[0]: "revoked", key_ids[1]: "active"}
    assert "--expires-in-days" in cli(home, "keys", "create", "--expires-in-days", "-1", code=2)


def test_accounts_json_and_signed_amounts(home: Path) -> None:
    account = cli(home, "accounts", "create", "team-a").strip().splitlines()[-1]
    assert account.startswith("acct_")
    rows = json.loads(cli(home, "accounts", "list", "--json"))
    assert account in [a["id"] for a in rows] and any(a["name"] == "team-a" for a in rows)
    assert f"{account}\tteam-a" in cli(home, "accounts", "list")

    entry = json.loads(cli(home, "accounts", "topup", account, "25.00", "--reason", "invoice 42", "--json"))
    assert entry["amount_usd"] == "25" and entry["balance_usd"] == "25" and entry["reason"] == "invoice 42"
    line = cli(home, "accounts", "adjust", account, "-1.50", "--reason", "goodwill")  # the README's example
    assert line.split("\t")[1:3] == ["adjustment", "-1.5"] and line.strip().endswith("balance 23.5")
    assert cli(home, "accounts", "balance", account).strip() == "23.5"
    bal = json.loads(cli(home, "accounts", "balance", account, "--json"))
    assert bal == {"account_id": account, "balance_usd": "23.5", "currency": "USD"}
    assert Decimal(json.loads(cli(home, "accounts", "adjust", account, "-0.000000000001", "--json"))
                   ["balance_usd"]) == Decimal("23.499999999999")

    for bad, why in (("abc", "decimal number"), ("1e400", "finite"), ("nan", "finite"),
                     ("0.0000000000001", "12 decimal places"), ("0", "zero")):
        assert why in cli(home, "accounts", "adjust", account, bad, code=2), bad
    assert "positive" in cli(home, "accounts", "topup", account, "-5", code=2)
    assert "no account 'acct_nope'" in cli(home, "accounts", "topup", "acct_nope", "5", code=1)
    assert "no account 'acct_nope'" in cli(home, "accounts", "balance", "acct_nope", code=1)
    assert "1 to 200 characters" in cli(home, "accounts", "create", " ", code=2)


def test_limits_set_changes_only_what_is_given_and_show(home: Path) -> None:
    account = cli(home, "accounts", "create", "limited").strip().splitlines()[-1]
    shown = json.loads(cli(home, "limits", "set", "--account", account, "--rpm", "60", "--tpm", "1000", "--json"))
    assert shown == [{"kind": "account", "id": account, "name": "limited", "rpm": 60, "tpm": 1000}]
    cli(home, "limits", "set", "--account", account, "--rpm", "30")
    shown = json.loads(cli(home, "limits", "show", "--account", account, "--json"))
    assert (shown[0]["rpm"], shown[0]["tpm"]) == (30, 1000)  # the TPM limit is kept
    cli(home, "limits", "set", "--account", account, "--tpm", "unlimited")
    text = cli(home, "limits", "show", "--account", account)
    assert text.splitlines()[1].split() == ["account", account, "limited", "30", "unlimited"]

    key = json.loads(cli(home, "keys", "list", "--json"))[-1]["id"]
    cli(home, "limits", "set", "--key", key, "--tpm", "500")
    everything = json.loads(cli(home, "limits", "show", "--json"))
    assert {"kind": "key", "id": key, "name": everything[-1]["name"], "rpm": None, "tpm": 500} in everything
    assert any(r["kind"] == "account" and r["id"] == account for r in everything)

    assert ">= 1" in cli(home, "limits", "set", "--key", key, "--rpm", "0", code=2)
    assert "whole number" in cli(home, "limits", "set", "--key", key, "--rpm", "lots", code=2)
    assert "nothing to change" in cli(home, "limits", "set", "--key", key, code=2)
    assert "exactly one" in cli(home, "limits", "set", "--key", key, "--account", account, "--rpm", "1", code=2)
    assert "no key 'key_nope'" in cli(home, "limits", "set", "--key", "key_nope", "--rpm", "5", code=1)
    assert "no account 'acct_nope'" in cli(home, "limits", "show", "--account", "acct_nope", code=1)
