"""The README's first command on a fresh data directory: simulator started, first key printed, curl works;
`perilune keys create` and `perilune check-config` as tooling uses them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import openai

from tests.conftest import free_port, perilune, wait_http

PROVIDER_ENVS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY", "TOGETHER_API_KEY",
                 "MISTRAL_API_KEY", "DEEPSEEK_API_KEY", "FIREWORKS_API_KEY", "OPENROUTER_API_KEY", "XAI_API_KEY")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in PROVIDER_ENVS and not k.startswith("PERILUNE_")}
    return {**env, **extra}


def test_serve_on_a_fresh_home_runs_the_simulator(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(PERILUNE_HOME=str(tmp_path / "home"), PERILUNE_SIMULATOR_PORT=str(free_port()))
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "serve", "--port", str(port)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    key = re.search(r"pk_live_[0-9A-Za-z]+", out)
    assert key, out
    assert "curl http://127.0.0.1:" in out and "from openai import OpenAI" in out
    assert "simulator" in err
    # the data directory holds the SQLite database, and a second start creates no new key
    assert (tmp_path / "home" / "perilune.db").exists()


def test_first_key_works_against_the_simulator(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(PERILUNE_SIMULATOR_PORT=str(free_port()))
    home = str(tmp_path / "h")
    proc = subprocess.Popen([sys.executable, "-m", "perilune", "serve", "--home", home, "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc)
        key = perilune("keys", "create", "--home", home, "--name", "second", env=env).stdout.strip().splitlines()[-1]
        assert re.fullmatch(r"pk_live_[0-9A-Za-z]{33}", key)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        r = client.chat.completions.create(model="sim-gpt", messages=[{"role": "user", "content": "Hello!"}])
        assert r.choices[0].message.content and (r.model_extra or {})["provider"] == "sim"
        listed = httpx.get(f"http://127.0.0.1:{port}/v1/models").json()
        enabled = {m["id"] for m in listed if m["isEnabled"]}
        assert {"sim-gpt", "sim-embed"} <= enabled and "gpt-4o-mini" not in enabled
    finally:
        proc.terminate()
        proc.wait(20)


def test_check_config_names_bad_keys_and_values(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('port = 8787\nbogus_key = 1\n')
    r = perilune("check-config", "--config", str(cfg), check=False, env=clean_env())
    assert r.returncode == 2 and "bogus_key" in r.stderr
    cfg.write_text('[[providers]]\nname = "x"\ntype = "carrier-pigeon"\nbase_url = "http://h"\n')
    r = perilune("check-config", "--config", str(cfg), check=False, env=clean_env())
    assert r.returncode == 2 and "providers[0].type" in r.stderr and "carrier-pigeon" in r.stderr
    cfg.write_text('[timeouts]\nconnect_s = -1\n')
    r = perilune("check-config", "--config", str(cfg), check=False, env=clean_env())
    assert r.returncode == 2 and "connect_s" in r.stderr
    cfg.write_text('port = 9000\n')
    r = perilune("check-config", "--config", str(cfg), check=False, env=clean_env(PERILUNE_PORT="eighty"))
    assert r.returncode == 2 and "port" in r.stderr and "eighty" in r.stderr
    r = perilune("check-config", "--config", str(cfg), check=False, env=clean_env(PERILUNE_NOPE="1"))
    assert r.returncode == 2 and "PERILUNE_NOPE" in r.stderr
    r = perilune("check-config", "--config", str(cfg), env=clean_env(OPENAI_API_KEY="sk-x"))
    assert r.returncode == 0 and "openai" in r.stdout
