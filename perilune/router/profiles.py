"""Router profiles as data: prompt-cluster centroids and, per model, its quality and cost per cluster.

A profile file is JSON (msgspec Structs below). It records the embedder that made the centroids, how
prompts are assigned to clusters (``hard``: the nearest centroid; ``soft``: a softmax over cosine
similarities with a temperature), and per model (UniRoute's representation of a model): the number
of labelled prompts it was measured on, per cluster the smoothed probability of a correct answer,
the number of labelled prompts, the mean cost and the mean output tokens; plus provenance.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import msgspec
import numpy as np

from perilune.router.embedder import Matrix

FORMAT_VERSION = 1


class ModelProfile(msgspec.Struct, kw_only=True):
    id: str
    validation_size: int  # labelled prompts this model was measured on
    quality: list[float]  # per cluster: smoothed P(correct)
    counts: list[int]  # per cluster: labelled prompts
    cluster_cost_pusd: list[int]  # per cluster: mean observed cost per request (pico-USD)
    cluster_output_tokens: list[int]  # per cluster: mean output tokens
    mean_cost_pusd: int  # over all its labelled prompts
    mean_prompt_tokens: int
    mean_output_tokens: int
    accuracy: float  # unsmoothed mean correctness over its labelled prompts
    source: str = ""  # data set(s) or "feedback"


class Provenance(msgspec.Struct, kw_only=True):
    datasets: list[str]
    embedder: str
    built_at: str  # ISO 8601, UTC
    samples: int
    train_size: int
    validation_size: int
    seed: int
    smoothing: float
    selection: str = ""  # how K / assignment were chosen, with the validation figures
    note: str = ""


class ProfileSet(msgspec.Struct, kw_only=True):
    version: int = FORMAT_VERSION
    embedder: str
    assignment: Literal["hard", "soft"] = "hard"
    temperature: float = 0.05  # soft assignment only
    centroids: list[list[float]]
    models: list[ModelProfile]
    provenance: Provenance

    @property
    def k(self) -> int:
        return len(self.centroids)

    def by_id(self) -> dict[str, ModelProfile]:
        return {m.id: m for m in self.models}

    def centroid_matrix(self) -> Matrix:
        return np.asarray(self.centroids, dtype=np.float32)

    def check(self) -> None:
        """Raise ValueError when the file is inconsistent (sizes, ranges, duplicate ids)."""
        if self.version != FORMAT_VERSION:
            raise ValueError(f"profile format version {self.version} is not supported (expected {FORMAT_VERSION})")
        k = self.k
        if k < 1:
            raise ValueError("profile has no clusters")
        dims = {len(c) for c in self.centroids}
        if len(dims) != 1:
            raise ValueError("profile centroids have different dimensions")
        seen: set[str] = set()
        for m in self.models:
            if m.id in seen:
                raise ValueError(f"profile lists model {m.id!r} twice")
            seen.add(m.id)
            for name in ("quality", "counts", "cluster_cost_pusd", "cluster_output_tokens"):
                if len(getattr(m, name)) != k:
                    raise ValueError(f"profile of {m.id!r}: {name} has {len(getattr(m, name))} entries, not {k}")
            if any(not (0.0 <= q <= 1.0) for q in m.quality):
                raise ValueError(f"profile of {m.id!r}: quality outside [0, 1]")


def load_profiles(path: str | Path | None, shipped: str = "default_profile.json") -> ProfileSet:
    """Read a profile file; ``None`` reads a profile shipped in the package (``shipped`` names it)."""
    if path is None:
        data = resources.files("perilune.router").joinpath(f"data/{shipped}").read_bytes()
        where = f"the shipped profile {shipped}"
    else:
        p = Path(path).expanduser()
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise ValueError(f"router profile file not found: {p}") from None
        where = str(p)
    try:
        profiles = msgspec.json.decode(data, type=ProfileSet)
    except msgspec.DecodeError as e:
        raise ValueError(f"{where} is not a valid router profile file: {e}") from None
    profiles.check()
    return profiles


def dump_profiles(profiles: ProfileSet) -> bytes:
    return msgspec.json.format(msgspec.json.encode(profiles), indent=1)


def round_centroids(c: Matrix, digits: int = 5) -> list[list[float]]:
    return [[round(float(v), digits) for v in row] for row in c]
