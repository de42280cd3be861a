"""``perilune router eval``: UniRoute against baselines on seeded splits of labelled data.

Per seed, the prompts are split into train (clusters) / validation (K, assignment, smoothing, kNN's
k) / test (never used for a choice). Every method routes the test prompts at a sweep of cost
weights; its curve is the upper hull of the (mean cost, mean accuracy) points (see
:mod:`perilune.router.curve`). Reported per method, as mean and standard deviation over seeds:

- ``auc``: the normalised area under the curve between the cheapest and the dearest single model;
- ``qnc``: quality-neutral cost, the least cost at which the curve reaches the accuracy of the best
  single model (chosen on train + validation), as a fraction of that model's cost (lower is better).

Baselines: random (a uniformly random model per prompt), cheapest and best single model (chosen on
train + validation), oracle (the true labels), ZeroRouter (the hull of all single models: every
mixture of them) and k-nearest-neighbours over the embeddings (labels of the k most similar
labelled prompts). The unseen-model setting hides ``unseen`` models (seeded): K and k are chosen
without them, and their profiles / neighbours come from the validation prompts only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from perilune.router import curve
from perilune.router.build import fit_tables, predict, select, split
from perilune.router.dataset import F64, Labelled
from perilune.router.decision import batch_weights as weights
from perilune.router.embedder import Matrix

KNN_KS = (5, 10, 20, 40, 80, 160, 320)
Rows = npt.NDArray[np.int64]


@dataclass
class MethodStats:
    auc: list[float] = field(default_factory=list)
    qnc: list[float | None] = field(default_factory=list)
    points: list[curve.Point] = field(default_factory=list)  # first seed, for the plot
    notes: list[str] = field(default_factory=list)


@dataclass
class Setting:
    methods: dict[str, MethodStats] = field(default_factory=dict)

    def add(self, name: str, points: Sequence[curve.Point], c_lo: float, c_hi: float, target: float,
            target_cost: float, note: str = "") -> None:
        m = self.methods.setdefault(name, MethodStats())
        m.auc.append(curve.auc(points, c_lo, c_hi))
        reach = curve.cost_to_reach(points, target)
        m.qnc.append(None if reach is None else reach / target_cost)
        if not m.points:
            m.points = list(points)
        if note:
            m.notes.append(note)


def knn_predict(x_query: Matrix, x_pool: Matrix, correct: F64, cost: F64, k: int) -> tuple[F64, F64]:
    k = min(k, len(x_pool))
    sims = x_query @ x_pool.T
    top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    return correct[top].mean(axis=1), cost[top].mean(axis=1)


def _auc(pq: F64, pc: F64, tq: F64, tc: F64) -> float:
    single = tc.mean(axis=0)
    return curve.auc(curve.operating_points(pq, pc, tq, tc), float(single.min()), float(single.max()))


def _choose_knn(x_tr: Matrix, tr: Labelled, x_va: Matrix, va: Labelled, cols: npt.NDArray[np.bool_]) -> int:
    scored = []
    for k in KNN_KS:
        pq, pc = knn_predict(x_va, x_tr, tr.correct[:, cols], tr.cost_pusd[:, cols], k)
        scored.append((_auc(pq, pc, va.correct[:, cols], va.cost_pusd[:, cols]), -k))
    return -max(scored)[1]


def run_seed(data: Labelled, x: Matrix, seed: int, results: dict[str, Setting], unseen: int,
             fractions: tuple[float, float, float]) -> None:
    tr_rows, va_rows, te_rows = split(len(data), seed, fractions)
    tr, va, te = data.subset(tr_rows), data.subset(va_rows), data.subset(te_rows)
    pool_rows = np.concatenate([tr_rows, va_rows])
    pool = data.subset(pool_rows)
    x_tr, x_va, x_te, x_pool = x[tr_rows], x[va_rows], x[te_rows], x[pool_rows]
    tq, tc = te.correct, te.cost_pusd
    m = len(data.models)
    single_q, single_c = tq.mean(axis=0), tc.mean(axis=0)
    c_lo, c_hi = float(single_c.min()), float(single_c.max())
    best = int(np.argmax(pool.correct.mean(axis=0)))
    cheap = int(np.argmin(pool.cost_pusd.mean(axis=0)))
    target, target_cost = float(single_q[best]), float(single_c[best])
    singles = [(float(single_c[j]), float(single_q[j])) for j in range(m)]
    rng = np.random.default_rng(seed + 1000)
    hidden = np.zeros(m, dtype=bool)
    hidden[rng.choice(m, size=min(unseen, m - 2), replace=False)] = True

    for setting, mask in (("seen", np.zeros(m, dtype=bool)), ("unseen", hidden)):
        if setting == "unseen" and not mask.any():
            continue
        res = results.setdefault(setting, Setting())
        old = ~mask

        def add(name: str, points: Sequence[curve.Point], note: str = "", res: Setting = res) -> None:
            res.add(name, points, c_lo, c_hi, target, target_cost, note)

        add("oracle", curve.operating_points(tq, tc, tq, tc))
        add("random", [(float(single_c.mean()), float(single_q.mean()))])
        add("cheapest", [singles[cheap]])
        add("best single", [singles[best]])
        add("ZeroRouter", singles)
        # UniRoute: K etc. chosen with the known models only; hidden models measured on validation only
        choice, tried, centroids = select(x_tr, tr, x_va, va, seed, models=old)
        for label, pick in (("UniRoute", choice),
                            ("UniRoute soft", max((c for c in tried if c.assignment == "soft"),
                                                  key=lambda c: c.auc, default=None))):
            if pick is None:
                continue
            c = centroids[pick.k]
            w_pool = weights(x_pool, c, pick.assignment, pick.temperature)
            t = fit_tables(w_pool, pool.correct, pool.cost_pusd, pool.output_tokens, pick.alpha)
            if mask.any():
                w_va = weights(x_va, c, pick.assignment, pick.temperature)
                tv = fit_tables(w_va, va.correct, va.cost_pusd, va.output_tokens, pick.alpha)
                t.quality[mask], t.cost[mask] = tv.quality[mask], tv.cost[mask]
            pq, pc = predict(weights(x_te, c, pick.assignment, pick.temperature), t)
            add(label, curve.operating_points(pq, pc, tq, tc),
                f"K={pick.k} {pick.assignment}{f' tau={pick.temperature}' if pick.assignment == 'soft' else ''} "
                f"alpha={pick.alpha:g}")
        k = _choose_knn(x_tr, tr, x_va, va, old)
        pq, pc = knn_predict(x_te, x_pool, pool.correct, pool.cost_pusd, k)
        if mask.any():
            vq, vc = knn_predict(x_te, x_va, va.correct, va.cost_pusd, k)
            pq[:, mask], pc[:, mask] = vq[:, mask], vc[:, mask]
        add("kNN", curve.operating_points(pq, pc, tq, tc), f"k={k}")


def evaluate(data: Labelled, x: Matrix, *, seeds: Sequence[int] = (0, 1, 2, 3, 4), unseen: int = 3,
             fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> dict[str, Setting]:
    results: dict[str, Setting] = {}
    for seed in seeds:
        run_seed(data, x, seed, results, unseen, fractions)
    return results


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    vs = [v for v in values if v is not None]
    if not vs:
        return None, None, 0
    return float(np.mean(vs)), float(np.std(vs)), len(vs)


def summary(results: dict[str, Setting]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for setting, res in results.items():
        rows = {}
        for name, m in res.methods.items():
            auc_mean, auc_std, _ = _mean_std(m.auc)
            qnc_mean, qnc_std, reached = _mean_std(m.qnc)
            rows[name] = {"auc_mean": auc_mean, "auc_std": auc_std, "qnc_mean": qnc_mean, "qnc_std": qnc_std,
                          "qnc_reached": f"{reached}/{len(m.qnc)}", "auc": m.auc, "qnc": m.qnc,
                          "choices": sorted(set(m.notes))}
        out[setting] = rows
    return out


def table(summ: dict[str, Any]) -> str:
    """Markdown table of the summary."""
    lines = ["| setting | method | AUC (mean ± sd) | quality-neutral cost (mean ± sd, of best single) |",
             "|---|---|---|---|"]
    for setting, rows in summ.items():
        for name, r in sorted(rows.items(), key=lambda kv: -(kv[1]["auc_mean"] or 0)):
            qnc = ("never reached" if r["qnc_mean"] is None else
                   f"{100 * r['qnc_mean']:.1f} % ± {100 * r['qnc_std']:.1f} ({r['qnc_reached']} seeds reach it)")
            lines.append(f"| {setting} | {name} | {r['auc_mean']:.4f} ± {r['auc_std']:.4f} | {qnc} |")
    return "\n".join(lines)


def plot(results: dict[str, Setting], path: Path, title: str) -> bool:
    """Cost-quality curves of the first seed (needs matplotlib; returns False without it)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    settings = list(results)
    fig, axes = plt.subplots(1, len(settings), figsize=(7 * len(settings), 5), squeeze=False)
    for ax, setting in zip(axes[0], settings, strict=True):
        for i, (name, m) in enumerate(results[setting].methods.items()):
            h = curve.hull(m.points)
            xs = [c / 1e6 for c, _ in h]  # pico-USD -> micro-USD
            ys = [q for _, q in h]
            if len(h) == 1:
                ax.scatter(xs, ys, label=name, s=40, color=f"C{i}", marker="D")
            else:
                ax.plot(xs, ys, marker=".", label=name, color=f"C{i}")
        ax.set_xscale("log")
        ax.set_xlabel("mean cost per prompt (micro-USD, log scale)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}: {setting} models (seed 0)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_json(summ: dict[str, Any], meta: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"meta": meta, "results": summ}, indent=1))
