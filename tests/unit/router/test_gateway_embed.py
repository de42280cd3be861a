"""``router.embedder = "gateway:<model>"``: the setting, and the start-up checks of its profiles."""

from __future__ import annotations

from pathlib import Path

import pytest

from perilune.router.gateway_embed import GatewayEmbedder, gateway_model
from perilune.router.profiles import dump_profiles, load_profiles
from perilune.router.service import RouterConfigError, plan
from perilune.settings import RouterSettings


def test_the_setting_names_a_model() -> None:
    assert gateway_model("gateway:text-embedding-3-small") == "text-embedding-3-small"
    assert gateway_model("hashing") is None
    with pytest.raises(ValueError):
        gateway_model("gateway: ")
    assert RouterSettings(embedder="gateway:sim-embed").embedder == "gateway:sim-embed"
    with pytest.raises(ValueError, match="gateway:<model>"):
        RouterSettings(embedder="gateway:")


def test_plan_needs_a_profile_built_with_that_model(tmp_path: Path) -> None:
    with pytest.raises(RouterConfigError, match=r"needs router\.profiles"):
        plan(None, "gateway:sim-embed")
    shipped = load_profiles(None)  # built with the hashing embedder
    f = tmp_path / "p.json"
    f.write_bytes(dump_profiles(shipped))
    with pytest.raises(RouterConfigError, match="was built with 'hashing-1024'"):
        plan(str(f), "gateway:sim-embed")
    shipped.embedder = "gateway:sim-embed"
    f.write_bytes(dump_profiles(shipped))
    p = plan(str(f), "gateway:sim-embed")
    emb = p.make_embedder()
    assert isinstance(emb, GatewayEmbedder) and emb.name == "gateway:sim-embed" and emb.dim == 1024
    assert not p.slow
    with pytest.raises(RuntimeError, match="bills each embedding"):
        emb.embed(["a prompt"])
