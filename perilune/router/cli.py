"""``perilune router build`` and ``perilune router eval``."""

from __future__ import annotations

import glob
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

router_app = typer.Typer(no_args_is_help=True, help="The semantic router: build profiles, evaluate.")
err = Console(stderr=True, soft_wrap=True)
DEFAULT_DATA = "bench/data/routerbench/*.csv.gz"


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(2)


def _embedder(spec: str, base_url: str | None = None):  # type: ignore[no-untyped-def]
    import os

    from perilune.router.embedder import make_embedder
    from perilune.router.gateway_embed import HttpEmbedder, gateway_model

    try:
        served = gateway_model(spec)
        if served is not None:
            key = os.environ.get("PERILUNE_API_KEY")
            if not key or not base_url:
                raise ValueError(f"--embedder {spec} embeds through a running gateway: give --base-url and "
                                 "PERILUNE_API_KEY (a key of that gateway; the embeddings are billed to it)")
            return HttpEmbedder(served, base_url, key)
        return make_embedder(spec)
    except (RuntimeError, ValueError) as e:
        raise _fail(str(e)) from None


def _embed(emb, prompts: list[str], cache: str | None):  # type: ignore[no-untyped-def]
    """Embed the prompts, or read them from ``cache`` (a .npy file written by an earlier run on the
    same data with the same embedder), writing it when it does not exist yet."""
    import numpy as np

    if cache and Path(cache).is_file():
        x = np.load(cache)
        if x.shape == (len(prompts), emb.dim):
            err.print(f"embeddings read from {cache}")
            return x
        raise _fail(f"{cache} holds {x.shape} embeddings, not {(len(prompts), emb.dim)}: remove it")
    x = emb.embed(prompts)
    if cache:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, x)
    return x


EmbeddingsOpt = Annotated[str | None, typer.Option(help="Cache of the prompt embeddings (.npy), reused by "
                                                   "later runs on the same data and embedder.")]


def _files(files: list[str] | None) -> list[str]:
    if files:
        return files
    found = sorted(glob.glob(DEFAULT_DATA))
    if not found:
        raise _fail(f"no data files given and none found at {DEFAULT_DATA}")
    return found


@router_app.command("build")
def build_cmd(
    files: Annotated[list[str] | None, typer.Argument(help="Labelled CSV/JSONL files (may be .gz).")] = None,
    out: Annotated[str, typer.Option("--out", help="Profile file to write.")] = "router_profiles.json",
    embedder: Annotated[str, typer.Option(help="auto | minilm | hashing | gateway:<model>.")] = "auto",
    base_url: Annotated[str | None, typer.Option("--base-url", envvar="PERILUNE_BASE_URL",
                                                 help="gateway:<model>: the gateway that serves the model.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the train/validation split and K-means.")] = 0,
    from_feedback: Annotated[bool, typer.Option("--from-feedback", help="Re-profile models from logged requests "
                                                "with a feedback score and a stored prompt.")] = False,
    base: Annotated[str | None, typer.Option(help="--from-feedback: the profile whose clusters are kept "
                                             "(default: router.profiles, else the shipped one).")] = None,
    embeddings: EmbeddingsOpt = None,
    config: Annotated[str | None, typer.Option("--config", envvar="PERILUNE_CONFIG")] = None,
    home: Annotated[str | None, typer.Option("--home", envvar="PERILUNE_HOME")] = None,
) -> None:
    """Write a profile file from labelled data (or from feedback); set router.profiles to use it."""
    from perilune.router.profiles import dump_profiles

    started = time.perf_counter()
    if from_feedback:
        profiles = _from_feedback(base, embedder, config, home)
    else:
        from perilune.router.build import build
        from perilune.router.dataset import read_labelled

        try:
            data = read_labelled(_files(files))
        except ValueError as e:
            raise _fail(str(e)) from None
        emb = _embedder(embedder, base_url)
        err.print(f"{len(data)} prompts ({data.skipped} skipped), {len(data.models)} models; embedding with "
                  f"{emb.name}")
        profiles = build(data, emb, seed=seed, x=_embed(emb, data.prompts, embeddings))
    Path(out).write_bytes(dump_profiles(profiles))
    err.print(profiles.provenance.selection)
    err.print(f"wrote {out}: {len(profiles.models)} models, {profiles.k} clusters, embedder {profiles.embedder} "
              f"({time.perf_counter() - started:.1f} s)")


def _from_feedback(base: str | None, embedder: str, config: str | None, home: str | None):  # type: ignore[no-untyped-def]
    from perilune.accounting.estimate import chat_prompt_tokens
    from perilune.api.router import _prompt_text
    from perilune.router.build import FeedbackSample, from_feedback
    from perilune.router.embedder import embedder_for_profile
    from perilune.router.feedback import scored_requests
    from perilune.router.profiles import load_profiles
    from perilune.router.service import SHIPPED
    from perilune.settings import SettingsError, load_settings
    from perilune.store.db import Database

    try:
        settings = load_settings(config, overrides={"home": home})
    except SettingsError as e:
        raise _fail(str(e)) from None
    path = base or settings.router.profiles
    try:
        if path is None:
            emb = _embedder(embedder)
            shipped = SHIPPED["hashing" if emb.name.startswith("hashing") else "minilm"]
            profile = load_profiles(None, shipped)
        else:
            profile = load_profiles(path)
            emb = embedder_for_profile(profile.embedder)
    except (RuntimeError, ValueError) as e:
        raise _fail(str(e)) from None
    db = Database(settings.db_url)
    try:
        db.migrate()
        samples = [FeedbackSample(_prompt_text({"messages": s.messages}), s.model, s.score, s.cost_pusd or 0,
                                  s.input_tokens or chat_prompt_tokens({"messages": s.messages}),
                                  s.output_tokens or 0) for s in scored_requests(db)]
    finally:
        db.dispose()
    try:
        return from_feedback(profile, emb, samples)
    except ValueError as e:
        raise _fail(str(e)) from None


@router_app.command("eval")
def eval_cmd(
    files: Annotated[list[str] | None, typer.Argument(help="Labelled CSV/JSONL files (default: the bundled "
                                                     "RouterBench subset).")] = None,
    embedder: Annotated[str, typer.Option(help="auto | minilm | hashing.")] = "auto",
    seeds: Annotated[int, typer.Option(help="Number of seeded splits.")] = 5,
    unseen: Annotated[int, typer.Option(help="Models hidden in the unseen-model setting.")] = 3,
    out_json: Annotated[str, typer.Option(help="Results (JSON).")] = "bench/results/router_eval.json",
    plot: Annotated[str, typer.Option(help="Cost-quality plot (PNG; needs matplotlib).")] =
        "bench/results/router_eval.png",
    embeddings: EmbeddingsOpt = None,
) -> None:
    """Evaluate UniRoute against the baselines on seeded splits; print a Markdown table."""
    from perilune.router import eval as ev
    from perilune.router.dataset import read_labelled

    try:
        data = read_labelled(_files(files))
    except ValueError as e:
        raise _fail(str(e)) from None
    emb = _embedder(embedder)
    started = time.perf_counter()
    x = _embed(emb, data.prompts, embeddings)
    embed_s = time.perf_counter() - started
    results = ev.evaluate(data, x, seeds=range(seeds), unseen=unseen)
    summ = ev.summary(results)
    meta = {"embedder": emb.name, "prompts": len(data), "skipped": data.skipped, "models": data.models,
            "seeds": seeds, "unseen_models": unseen, "split": "0.6 train / 0.2 validation / 0.2 test",
            "embed_s": round(embed_s, 1), "eval_s": round(time.perf_counter() - started - embed_s, 1),
            "datasets": data.sources}
    ev.write_json(summ, meta, Path(out_json))
    drew = ev.plot(results, Path(plot), f"router eval ({emb.name})")
    print(ev.table(summ))
    err.print(f"wrote {out_json}" + (f" and {plot}" if drew else " (no plot: matplotlib is not installed)"))
