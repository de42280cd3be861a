"""Profiles from a small labelled CSV (written here), JSONL input, the service on the result, bad data."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path

import pytest

from perilune.accounting.catalog import Catalog
from perilune.router.build import FeedbackSample, build, from_feedback
from perilune.router.dataset import read_labelled
from perilune.router.embedder import HashingEmbedder
from perilune.router.profiles import dump_profiles, load_profiles
from perilune.router.service import RouterConfigError, RouterService

MODELS = ["math-pro", "poet-pro", "cheap"]
MATH = ["What is {a} plus {b}? Give the sum of the integers.", "Compute {a} times {b}, the product of two numbers.",
        "Solve for x: x + {a} = {b}. Algebra equation.", "Is {a} a prime number? Arithmetic question."]
POEM = ["Write a short poem about the {w} in autumn light.", "Compose a haiku on the {w} and the quiet sea.",
        "A sonnet about love and the {w}, with rhymes.", "Write verses about the {w} under moonlight."]
WORDS = ["moon", "river", "forest", "wind", "rose", "snow"]


def _rows() -> list[dict[str, str]]:
    rows = []
    for i in range(24):
        math = i % 2 == 0
        text = (MATH[i % 4].format(a=i * 7 + 3, b=i * 3 + 11) if math else POEM[i % 4].format(w=WORDS[i % 6]))
        row = {"sample_id": f"s{i}", "prompt": str([text]), "eval_name": "math" if math else "poetry"}
        right = {"math-pro": math, "poet-pro": not math, "cheap": i % 4 == 0}
        for m in MODELS:
            row[m] = "1.0" if right[m] else "0.0"
            row[f"{m}|total_cost"] = {"math-pro": "0.003", "poet-pro": "0.002", "cheap": "0.0001"}[m]
            row[f"{m}|model_response"] = "['an answer of five words']"
        rows.append(row)
    return rows


@pytest.fixture
def small_csv(tmp_path: Path) -> Path:
    path = tmp_path / "small.csv"
    rows = _rows()
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def _service(profile_path: Path) -> RouterService:
    return RouterService(load_profiles(profile_path), HashingEmbedder(), Catalog({}, "today"), lambda m: False)


def test_build_profiles_from_a_small_csv(small_csv: Path, tmp_path: Path) -> None:
    data = read_labelled([small_csv])
    assert data.models == MODELS and len(data) == 24 and data.skipped == 0
    assert data.prompts[0].startswith("What is 3 plus 11?")  # the list cell is unwrapped
    assert data.cost_pusd[0].tolist() == [3_000_000_000, 2_000_000_000, 100_000_000]  # exact pico-USD
    profiles = build(data, HashingEmbedder(), seed=1)
    assert profiles.k >= 2  # one cluster cannot tell the two topics apart; validation must see that
    assert [m.id for m in profiles.models] == MODELS
    by_id = profiles.by_id()
    assert by_id["math-pro"].validation_size == 24 and by_id["math-pro"].accuracy == 0.5
    assert by_id["cheap"].mean_cost_pusd == 100_000_000 and by_id["cheap"].mean_output_tokens > 0
    assert profiles.provenance.datasets == ["small.csv"] and profiles.provenance.embedder == "hashing-1024"
    out = tmp_path / "p.json"
    out.write_bytes(dump_profiles(profiles))
    svc = _service(out)
    math = asyncio.run(svc.decide("What is 12 plus 30? Give the sum of the integers.", MODELS, 0.0, 20))
    poem = asyncio.run(svc.decide("Compose a haiku on the snow and the quiet sea.", MODELS, 0.0, 20))
    assert (math.model, poem.model) == ("math-pro", "poet-pro")
    assert math.cluster != poem.cluster
    cheap = asyncio.run(svc.decide("Compose a haiku on the snow and the quiet sea.", MODELS, 50.0, 20))
    assert cheap.model == "cheap"
    # a profiled model with no catalog price: the expected cost is the mean observed in its cluster
    assert {c.model: c.expected_cost_pusd for c in cheap.candidates}["cheap"] == 100_000_000
    again = asyncio.run(svc.decide("Compose a haiku on the snow and the quiet sea.", MODELS, 0.0, 20))
    assert again.cached and not poem.cached and again.model == "poet-pro"


def test_jsonl_reads_like_csv(small_csv: Path, tmp_path: Path) -> None:
    jl = tmp_path / "small.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in _rows()))
    a, b = read_labelled([small_csv]), read_labelled([jl])
    assert a.prompts == b.prompts and (a.correct == b.correct).all() and (a.cost_pusd == b.cost_pusd).all()


def test_missing_labels_are_skipped_and_bad_ones_refused(tmp_path: Path) -> None:
    rows = _rows()
    rows[3]["cheap"] = ""
    p = tmp_path / "gaps.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    assert read_labelled([p]).skipped == 1
    rows[4]["cheap"] = "2"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        read_labelled([p])
    rows[4]["cheap"], rows[5]["cheap|total_cost"] = "1", "lots"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(ValueError, match="not a number"):
        read_labelled([p])
    with pytest.raises(ValueError, match="not found"):
        read_labelled([tmp_path / "nope.csv"])


def test_a_profile_of_another_embedder_is_refused(small_csv: Path, tmp_path: Path) -> None:
    profiles = build(read_labelled([small_csv]), HashingEmbedder(), seed=1)
    with pytest.raises(RouterConfigError, match="hashing-1024"):
        RouterService(profiles, HashingEmbedder(256), Catalog({}, "today"), lambda m: False)
    bad = tmp_path / "bad.json"
    raw = json.loads(dump_profiles(profiles))
    raw["version"] = 9
    bad.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="version"):
        load_profiles(bad)
    raw["version"], raw["models"][0]["quality"] = 1, [0.5]
    bad.write_text(json.dumps(raw))
    with pytest.raises(ValueError, match="quality has 1 entries"):
        load_profiles(bad)


def test_feedback_reprofiles_only_the_scored_models(small_csv: Path) -> None:
    base = build(read_labelled([small_csv]), HashingEmbedder(), seed=1)
    samples = [FeedbackSample("What is 1 plus 2? Give the sum of the integers.", "cheap", 1.0, 5, 10, 3),
               FeedbackSample("Write a short poem about the moon in autumn light.", "cheap", 0.0, 7, 10, 5),
               FeedbackSample("Write a short poem about the rose in autumn light.", "new-model", 0.5, 9, 10, 4)]
    out = from_feedback(base, HashingEmbedder(), samples)
    by_id = out.by_id()
    assert by_id["math-pro"] == base.by_id()["math-pro"]
    assert by_id["cheap"].source == "feedback" and by_id["cheap"].validation_size == 2
    assert by_id["cheap"].accuracy == 0.5 and by_id["cheap"].mean_cost_pusd == 6
    assert by_id["new-model"].validation_size == 1 and out.centroids == base.centroids
    with pytest.raises(ValueError, match="no logged request"):
        from_feedback(base, HashingEmbedder(), [])


def test_shipped_default_profile_covers_the_11_models() -> None:
    p = load_profiles(None)
    assert len(p.models) == 11 and p.embedder == "hashing-1024"
    assert {"gpt-4-1106-preview", "claude-v1", "mistralai/mixtral-8x7b-chat"} <= set(p.by_id())
    assert p.provenance.samples == 2205


def test_background_load_hands_back_the_result_or_the_error() -> None:
    from perilune.router.service import in_daemon_thread

    sentinel = object()

    def boom() -> RouterService:
        raise ValueError("no model")

    async def main() -> None:
        assert await in_daemon_thread(lambda: sentinel) is sentinel  # type: ignore[arg-type,return-value]
        with pytest.raises(ValueError, match="no model"):
            await in_daemon_thread(boom)

    asyncio.run(main())
