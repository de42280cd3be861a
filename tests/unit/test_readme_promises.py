"""What the README says of settings and errors holds: a secret's PERILUNE_* variable named by the
configuration is not an unknown setting, and a model whose provider is missing names the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from perilune.accounting.catalog import build_catalog
from perilune.errors import ProviderNotConfigured
from perilune.gateway.routing import Router
from perilune.providers.base import CHAT
from perilune.providers.registry import build_providers
from perilune.settings import SettingsError, load_settings


def test_the_readmes_jwt_secret_variable_is_accepted(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[jwt]\nhs256_secret_env = "PERILUNE_JWT_SECRET"\naudience = "perilune"\n')
    s = load_settings(cfg, environ={"PERILUNE_JWT_SECRET": "x" * 40})
    assert s.jwt is not None and s.jwt.hs256_secret_env == "PERILUNE_JWT_SECRET"
    cfg.write_text('[[providers]]\nname = "local"\nbase_url = "http://127.0.0.1:1/v1"\n'
                   'api_key_env = "PERILUNE_LOCAL_KEY"\n')
    assert load_settings(cfg, environ={"PERILUNE_LOCAL_KEY": "k"}).providers[0].api_key_env == "PERILUNE_LOCAL_KEY"
    with pytest.raises(SettingsError, match="PERILUNE_JWT_SECRET"):  # not named by this config: unknown
        load_settings(cfg, environ={"PERILUNE_JWT_SECRET": "x"})


def test_missing_provider_error_names_the_environment_variable() -> None:
    settings = load_settings(None, environ={})
    providers = build_providers(settings, {})
    router = Router(build_catalog(settings), providers)
    with pytest.raises(ProviderNotConfigured) as e:
        router.resolve("gpt-4o-mini", CHAT)
    assert "OPENAI_API_KEY" in e.value.message and e.value.param == "model"
