"""UniRoute profile building: K-means over training prompts, per-model error per cluster, K on validation.

1. Embed every prompt. Split the labelled prompts (seeded) into a training part and a validation part.
2. For each K of a grid, spherical K-means (k-means++ start, cosine) over the training embeddings.
3. A model's profile: per cluster, its smoothed probability of a correct answer,
   ``(correct_k + alpha * accuracy) / (n_k + alpha)``, shrinking small clusters towards the model's
   overall accuracy; likewise its mean cost and output tokens per cluster.
4. Each (K, assignment, alpha) is scored on the validation prompts (profiles from the training
   prompts) by the normalised area under the cost-quality curve; the best wins. Ties: smaller K.
5. The final profiles keep the chosen training centroids and are measured on all labelled prompts.

Soft assignment (a softmax over cosine similarities, temperature tau) is in the grid; it is kept only
when it measures better on validation.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from perilune.router import curve
from perilune.router.dataset import F64, Labelled
from perilune.router.decision import batch_weights as weights
from perilune.router.embedder import Embedder, Matrix
from perilune.router.profiles import ModelProfile, ProfileSet, Provenance, round_centroids

K_GRID = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48)
ALPHAS = (1.0, 4.0, 16.0)
SOFT_TEMPERATURES = (0.02, 0.05)


@dataclass(frozen=True)
class Choice:
    k: int
    assignment: str
    temperature: float
    alpha: float
    auc: float


def kmeans(x: Matrix, k: int, seed: int, iters: int = 50, restarts: int = 3) -> Matrix:
    """Spherical K-means (rows of ``x`` are unit vectors); the restart with the highest cohesion wins."""
    n = len(x)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    best, best_fit = x[:k].copy(), -np.inf
    for _ in range(restarts):
        centers = [x[int(rng.integers(n))]]
        dist = 1.0 - x @ centers[0]
        for _ in range(1, k):  # k-means++: next centre with probability proportional to distance^2
            p = np.maximum(dist, 0) ** 2
            total = p.sum()
            idx = int(rng.choice(n, p=p / total)) if total > 0 else int(rng.integers(n))
            centers.append(x[idx])
            dist = np.minimum(dist, 1.0 - x @ x[idx])
        c = np.stack(centers).astype(np.float32)
        labels = np.full(n, -1)
        for _ in range(iters):
            new = np.argmax(x @ c.T, axis=1)
            if np.array_equal(new, labels):
                break
            labels = new
            for j in range(k):
                members = x[labels == j]
                if len(members):
                    v = members.sum(axis=0)
                    c[j] = v / (np.linalg.norm(v) or 1.0)
        fit = float(np.sum(np.max(x @ c.T, axis=1)))
        if fit > best_fit:
            best, best_fit = c.copy(), fit
    return best


@dataclass
class Tables:
    """Per model (rows) and cluster (columns): smoothed quality, cost and output tokens; soft counts."""

    quality: F64
    cost: F64
    out_tokens: F64
    counts: F64


def fit_tables(w: F64, correct: F64, cost: F64, out_tokens: F64, alpha: float) -> Tables:
    counts = w.sum(axis=0)  # (K,)
    acc = correct.mean(axis=0)  # (M,)
    mean_cost = cost.mean(axis=0)
    tok = np.where(np.isnan(out_tokens), 0.0, out_tokens)
    mean_tok = tok.mean(axis=0)
    denom = counts[None, :] + alpha
    quality = (correct.T @ w + alpha * acc[:, None]) / denom
    cluster_cost = (cost.T @ w + alpha * mean_cost[:, None]) / denom
    cluster_tok = (tok.T @ w + alpha * mean_tok[:, None]) / denom
    return Tables(np.clip(quality, 0.0, 1.0), cluster_cost, cluster_tok, counts)


def predict(w: F64, t: Tables) -> tuple[F64, F64]:
    """Predicted quality and cost, (n, M), for prompts with cluster weights ``w``."""
    return w @ t.quality.T, w @ t.cost.T


def val_auc(pred_q: F64, pred_c: F64, true_q: F64, true_c: F64) -> float:
    single_c = true_c.mean(axis=0)
    pts = curve.operating_points(pred_q, pred_c, true_q, true_c)
    return curve.auc(pts, float(single_c.min()), float(single_c.max()))


def select(x_train: Matrix, train: Labelled, x_val: Matrix, val: Labelled, seed: int,
           models: npt.NDArray[np.bool_] | None = None, k_grid: tuple[int, ...] = K_GRID
           ) -> tuple[Choice, list[Choice], dict[int, Matrix]]:
    """Choose K, assignment and smoothing on validation data; ``models`` masks the models that may be
    used for the choice (the unseen-model evaluation hides some)."""
    cols = np.ones(len(train.models), dtype=bool) if models is None else models
    tried: list[Choice] = []
    centroids: dict[int, Matrix] = {}
    for k in k_grid:
        if k > len(x_train):
            continue
        c = centroids[k] = kmeans(x_train, k, seed)
        variants = [("hard", 0.0)] + ([("soft", t) for t in SOFT_TEMPERATURES] if k > 1 else [])
        for assignment, tau in variants:
            w_tr, w_va = weights(x_train, c, assignment, tau), weights(x_val, c, assignment, tau)
            for alpha in ALPHAS:
                t = fit_tables(w_tr, train.correct[:, cols], train.cost_pusd[:, cols],
                               train.output_tokens[:, cols], alpha)
                pq, pc = predict(w_va, t)
                a = val_auc(pq, pc, val.correct[:, cols], val.cost_pusd[:, cols])
                tried.append(Choice(k, assignment, tau, alpha, a))
    best = max(tried, key=lambda ch: (round(ch.auc, 6), -ch.k, ch.assignment == "hard"))
    return best, tried, centroids


def split(n: int, seed: int, fractions: tuple[float, ...]) -> list[npt.NDArray[np.int64]]:
    perm = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([round(f * n) for f in fractions[:-1]])
    return [np.sort(p) for p in np.split(perm, cuts)]


def profiles_from(data: Labelled, x: Matrix, centroids: Matrix, choice: Choice, embedder: str,
                  provenance: Provenance) -> ProfileSet:
    w = weights(x, centroids, choice.assignment, choice.temperature)
    t = fit_tables(w, data.correct, data.cost_pusd, data.output_tokens, choice.alpha)
    tok = np.where(np.isnan(data.output_tokens), 0.0, data.output_tokens)
    models = []
    for j, model in enumerate(data.models):
        models.append(ModelProfile(
            id=model, validation_size=len(data), quality=[round(float(q), 5) for q in t.quality[j]],
            counts=[round(float(n)) for n in t.counts], cluster_cost_pusd=[round(float(v)) for v in t.cost[j]],
            cluster_output_tokens=[round(float(v)) for v in t.out_tokens[j]],
            mean_cost_pusd=round(float(data.cost_pusd[:, j].mean())),
            mean_prompt_tokens=round(float(data.prompt_tokens.mean())),
            mean_output_tokens=round(float(tok[:, j].mean())),
            accuracy=round(float(data.correct[:, j].mean()), 5), source=",".join(data.sources)))
    return ProfileSet(embedder=embedder, assignment="soft" if choice.assignment == "soft" else "hard",
                      temperature=choice.temperature or 0.05, centroids=round_centroids(centroids), models=models,
                      provenance=provenance)


def build(data: Labelled, embedder: Embedder, *, seed: int = 0, val_fraction: float = 0.3,
          x: Matrix | None = None) -> ProfileSet:
    """Profiles from labelled data: K and assignment chosen on a seeded validation split."""
    x = embedder.embed(data.prompts) if x is None else x
    train_rows, val_rows = split(len(data), seed, (1 - val_fraction, val_fraction))
    best, tried, centroids = select(x[train_rows], data.subset(train_rows), x[val_rows], data.subset(val_rows),
                                    seed)
    by_k: dict[int, float] = {}
    for ch in tried:
        if ch.k not in by_k or ch.auc > by_k[ch.k]:
            by_k[ch.k] = ch.auc
    selection = (f"chosen on {len(val_rows)} validation prompts by normalised cost-quality AUC: K={best.k}, "
                 f"{best.assignment}{f' tau={best.temperature}' if best.assignment == 'soft' else ''}, "
                 f"alpha={best.alpha:g}, AUC {best.auc:.4f}; best AUC per K: "
                 + ", ".join(f"{k}: {a:.4f}" for k, a in sorted(by_k.items())))
    prov = Provenance(datasets=list(data.sources), embedder=embedder.name,
                      built_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(), samples=len(data),
                      train_size=len(train_rows), validation_size=len(val_rows), seed=seed, smoothing=best.alpha,
                      selection=selection,
                      note=f"centroids from the training prompts; profiles measured on all {len(data)} labelled "
                           f"prompts ({data.skipped} rows with a missing label skipped)")
    return profiles_from(data, x, centroids[best.k], best, embedder.name, prov)


@dataclass(frozen=True)
class FeedbackSample:
    prompt: str
    model: str
    score: float  # in [0, 1]
    cost_pusd: int
    prompt_tokens: int
    output_tokens: int


def from_feedback(base: ProfileSet, embedder: Embedder, samples: list[FeedbackSample],
                  alpha: float | None = None) -> ProfileSet:
    """Profiles of the models that have scored requests, in the clusters of ``base``; models without
    feedback keep their ``base`` profile. A model's smoothing prior is its mean score."""
    if not samples:
        raise ValueError("no logged request has both a feedback score and a stored prompt "
                         "(send requests with \"observability\": true, then POST /v1/feedback)")
    alpha = base.provenance.smoothing if alpha is None else alpha
    c = base.centroid_matrix()
    x = embedder.embed([s.prompt for s in samples])
    w = weights(x, c, base.assignment, base.temperature)
    models = {m.id: m for m in base.models}
    for model in sorted({s.model for s in samples}):
        rows = np.array([i for i, s in enumerate(samples) if s.model == model])
        pick = [samples[i] for i in rows]
        scores = np.array([[s.score] for s in pick])
        costs = np.array([[float(s.cost_pusd)] for s in pick])
        toks = np.array([[float(s.output_tokens)] for s in pick])
        tb = fit_tables(w[rows], scores, costs, toks, alpha)
        models[model] = ModelProfile(
            id=model, validation_size=len(pick), quality=[round(float(q), 5) for q in tb.quality[0]],
            counts=[round(float(n)) for n in tb.counts], cluster_cost_pusd=[round(float(v)) for v in tb.cost[0]],
            cluster_output_tokens=[round(float(v)) for v in tb.out_tokens[0]],
            mean_cost_pusd=round(float(costs.mean())),
            mean_prompt_tokens=round(float(np.mean([s.prompt_tokens for s in pick]))),
            mean_output_tokens=round(float(toks.mean())), accuracy=round(float(scores.mean()), 5),
            source="feedback")
    prov = Provenance(datasets=[*base.provenance.datasets, "feedback"], embedder=embedder.name,
                      built_at=dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
                      samples=base.provenance.samples + len(samples), train_size=base.provenance.train_size,
                      validation_size=base.provenance.validation_size, seed=base.provenance.seed, smoothing=alpha,
                      selection=base.provenance.selection,
                      note=f"clusters of the base profile; {len(samples)} scored requests re-profiled "
                           f"{len({s.model for s in samples})} model(s)")
    return ProfileSet(embedder=base.embedder, assignment=base.assignment, temperature=base.temperature,
                      centroids=base.centroids, models=list(models.values()), provenance=prov)
