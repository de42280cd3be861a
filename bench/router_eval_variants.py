"""UniRoute variants aimed at the quality-neutral-cost target, on the splits of ``perilune router eval``.

    .venv/bin/python bench/router_eval_variants.py [--embedder minilm] [--embeddings CACHE.npy]
                                                   [--variants base,ppcost,...] [--out FILE]

Same data, seeds and 60/20/20 splits as ``perilune router eval`` (seen models). Every choice (K,
assignment, temperature, smoothing, the kNN blend) is made on train/validation only; the test prompts
are used once, for the reported figures. Variants:

- ``base``: ``perilune router eval``'s UniRoute (grid of build.py, chosen by validation AUC).
- ``ppcost``: the expected cost per prompt, not per cluster: the prompt's own tokens x the model's
  input price + the cluster's mean output tokens x its output price (prices fitted by least squares
  to the labelled costs of the training prompts), as the gateway does with a priced catalog.
- ``fine``: a finer grid (K 1-12, 14 ... 64; smoothing 0.5-64; temperatures 0.01-0.1).
- ``blend``: predicted quality = b x UniRoute + (1 - b) x kNN (k in 20-160), b and k on validation.
- ``*-valqnc``: the variant chosen by the validation quality-neutral cost (ties: AUC) instead of AUC.
- ``cv``: the base grid chosen by 5-fold cross-validated AUC on train + validation.
- ``hier``: hierarchical shrinkage: a cluster's quality is shrunk towards its model's quality in the
  coarse parent cluster (K0 in 2-6, itself shrunk towards the model's accuracy) that holds its
  centroid, instead of towards the model's overall accuracy; K0, K, assignment and smoothing on
  validation.

Prints one line per variant (test AUC, quality-neutral cost as a share of the best single model's
cost, per seed) and writes them as JSON.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from perilune.router import curve
from perilune.router.build import ALPHAS, K_GRID, SOFT_TEMPERATURES, Tables, fit_tables, kmeans, split
from perilune.router.dataset import Labelled, read_labelled
from perilune.router.decision import batch_weights as weights
from perilune.router.eval import knn_predict

F64 = npt.NDArray[np.float64]
Rows = npt.NDArray[np.int64]
Grid = tuple[tuple[int, ...], tuple[float, ...], tuple[float, ...]]
BASE: Grid = (K_GRID, ALPHAS, SOFT_TEMPERATURES)
FINE: Grid = ((*range(1, 13), 14, 16, 20, 24, 28, 32, 40, 48, 64), (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0),
              (0.01, 0.02, 0.03, 0.05, 0.1))
BLEND_KS = (20, 40, 80, 160)
BLEND_BS = (0.75, 0.5, 0.25)
PARENT_KS = (2, 3, 4, 6)
RIDGE_LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def hier_tables(w: F64, w0: F64, parent_of: npt.NDArray[np.int64], correct: F64, alpha: float) -> F64:
    """Per model and cluster: quality shrunk towards the parent cluster's (shrunk) quality."""
    acc = correct.mean(axis=0)
    parent = (correct.T @ w0 + alpha * acc[:, None]) / (w0.sum(axis=0)[None, :] + alpha)
    q: F64 = (correct.T @ w + alpha * parent[:, parent_of]) / (w.sum(axis=0)[None, :] + alpha)
    return np.clip(q, 0.0, 1.0)


class Run:
    def __init__(self, data: Labelled, x: npt.NDArray[np.float32]) -> None:
        self.d, self.x = data, x
        self.tok = np.where(np.isnan(data.output_tokens), 0.0, data.output_tokens)

    def prices(self, rows: Rows) -> F64:
        """Per model (input, output) price per token, fitted to the labelled costs of ``rows``."""
        out = []
        for j in range(len(self.d.models)):
            a = np.stack([self.d.prompt_tokens[rows], self.tok[rows, j]], 1)
            coef, *_ = np.linalg.lstsq(a, self.d.cost_pusd[rows, j], rcond=None)
            out.append(np.maximum(coef, 0.0))
        return np.asarray(out)

    def cost(self, w: F64, t: Tables, rows: Rows, prices: F64 | None) -> F64:
        if prices is None:
            pc: F64 = w @ t.cost.T
            return pc
        return self.d.prompt_tokens[rows][:, None] * prices[:, 0] + (w @ t.out_tokens.T) * prices[:, 1]

    def score(self, pq: F64, pc: F64, rows: Rows, target: tuple[float, float]) -> tuple[float, float | None]:
        tq, tc = self.d.correct[rows], self.d.cost_pusd[rows]
        pts = curve.operating_points(pq, pc, tq, tc)
        single = tc.mean(axis=0)
        reach = curve.cost_to_reach(pts, target[0])
        return curve.auc(pts, float(single.min()), float(single.max())), None if reach is None else reach / target[1]

    def target(self, choose_on: Rows, rows: Rows) -> tuple[float, float]:
        """Accuracy and cost on ``rows`` of the model most accurate on ``choose_on``."""
        best = int(np.argmax(self.d.correct[choose_on].mean(axis=0)))
        return float(self.d.correct[rows, best].mean()), float(self.d.cost_pusd[rows, best].mean())

    def candidates(self, tr: Rows, va: Rows, seed: int, grid: Grid, ppcost: bool, blend: bool
                   ) -> list[dict[str, Any]]:
        """Every setting of the grid scored on ``va`` with tables from ``tr``."""
        d, x = self.d, self.x
        prices = self.prices(tr) if ppcost else None
        target = self.target(tr, va)
        knn = {k: knn_predict(x[va], x[tr], d.correct[tr], d.cost_pusd[tr], k)[0] for k in BLEND_KS} if blend else {}
        tried = []
        k_grid, alphas, temps = grid
        for k in k_grid:
            c = kmeans(x[tr], k, seed)
            for asg, tau in [("hard", 0.0)] + ([("soft", t) for t in temps] if k > 1 else []):
                w_tr, w_va = weights(x[tr], c, asg, tau), weights(x[va], c, asg, tau)
                for alpha in alphas:
                    t = fit_tables(w_tr, d.correct[tr], d.cost_pusd[tr], d.output_tokens[tr], alpha)
                    pq, pc = w_va @ t.quality.T, self.cost(w_va, t, va, prices)
                    mixes = [(1.0, 0)] + [(b, kk) for kk in knn for b in BLEND_BS]
                    for b, kk in mixes:
                        q = pq if b == 1.0 else b * pq + (1 - b) * knn[kk]
                        auc, qnc = self.score(q, pc, va, target)
                        tried.append({"k": k, "assignment": asg, "tau": tau, "alpha": alpha, "b": b, "knn_k": kk,
                                      "auc": auc, "qnc": qnc})
        return tried

    def hier(self, tr: Rows, va: Rows, seed: int) -> list[dict[str, Any]]:
        d, x = self.d, self.x
        target = self.target(tr, va)
        tried = []
        for k0 in PARENT_KS:
            c0 = kmeans(x[tr], k0, seed)
            w0 = weights(x[tr], c0, "hard", 0.0)
            for k in (k for k in K_GRID if k > k0):
                c = kmeans(x[tr], k, seed)
                parent_of = np.argmax(c @ c0.T, axis=1)
                for asg, tau in [("hard", 0.0)] + [("soft", t) for t in SOFT_TEMPERATURES]:
                    w_tr, w_va = weights(x[tr], c, asg, tau), weights(x[va], c, asg, tau)
                    for alpha in ALPHAS:
                        t = fit_tables(w_tr, d.correct[tr], d.cost_pusd[tr], d.output_tokens[tr], alpha)
                        q = hier_tables(w_tr, w0, parent_of, d.correct[tr], alpha)
                        auc, qnc = self.score(w_va @ q.T, w_va @ t.cost.T, va, target)
                        tried.append({"k": k, "k0": k0, "assignment": asg, "tau": tau, "alpha": alpha, "b": 1.0,
                                      "knn_k": 0, "auc": auc, "qnc": qnc})
        return tried

    def test_hier(self, ch: dict[str, Any], tr: Rows, pool: Rows, te: Rows, seed: int) -> tuple[float, float | None]:
        d, x = self.d, self.x
        c0, c = kmeans(x[tr], ch["k0"], seed), kmeans(x[tr], ch["k"], seed)
        w_pool, w_te = (weights(x[r], c, ch["assignment"], ch["tau"]) for r in (pool, te))
        t = fit_tables(w_pool, d.correct[pool], d.cost_pusd[pool], d.output_tokens[pool], ch["alpha"])
        q = hier_tables(w_pool, weights(x[pool], c0, "hard", 0.0), np.argmax(c @ c0.T, axis=1), d.correct[pool],
                        ch["alpha"])
        return self.score(w_te @ q.T, w_te @ t.cost.T, te, self.target(pool, te))

    def ridge(self, tr: Rows, va: Rows, te: Rows) -> tuple[float, tuple[float, float | None]]:
        """L2 strength chosen on ``va`` (fitted on ``tr``), then fitted on tr + va and scored on ``te``."""
        d = self.d
        xb = np.hstack([self.x.astype(np.float64), np.ones((len(self.x), 1))])

        def fit(rows: Rows, lam: float) -> F64:
            reg = lam * np.eye(xb.shape[1])
            reg[-1, -1] = 0.0  # the intercept is not shrunk
            a = xb[rows]
            w: F64 = np.asarray(np.linalg.solve(a.T @ a + reg, a.T @ d.correct[rows]), dtype=np.float64)
            return w

        def predict(fit_rows: Rows, rows: Rows, lam: float) -> tuple[F64, F64]:
            pq = np.clip(xb[rows] @ fit(fit_rows, lam), 0.0, 1.0)
            return pq, np.tile(d.cost_pusd[fit_rows].mean(axis=0), (len(rows), 1))

        lam = max(RIDGE_LAMBDAS, key=lambda lm: self.score(*predict(tr, va, lm), va, self.target(tr, va))[0])
        pool = np.concatenate([tr, va])
        return lam, self.score(*predict(pool, te, lam), te, self.target(pool, te))

    def test(self, ch: dict[str, Any], tr: Rows, pool: Rows, te: Rows, seed: int, ppcost: bool
             ) -> tuple[float, float | None]:
        """The chosen setting: centroids from ``tr``, tables from ``pool``, scored once on ``te``."""
        d, x = self.d, self.x
        c = kmeans(x[tr], ch["k"], seed)
        w_pool, w_te = (weights(x[r], c, ch["assignment"], ch["tau"]) for r in (pool, te))
        t = fit_tables(w_pool, d.correct[pool], d.cost_pusd[pool], d.output_tokens[pool], ch["alpha"])
        pq = w_te @ t.quality.T
        if ch["b"] < 1.0:
            pq = ch["b"] * pq + (1 - ch["b"]) * knn_predict(x[te], x[pool], d.correct[pool], d.cost_pusd[pool],
                                                             ch["knn_k"])[0]
        return self.score(pq, self.cost(w_te, t, te, self.prices(pool) if ppcost else None), te,
                          self.target(pool, te))


def by_auc(r: dict[str, Any]) -> tuple[float, ...]:
    return (round(r["auc"], 6), -r["k"])


def by_qnc(r: dict[str, Any]) -> tuple[float, ...]:
    return (-(r["qnc"] if r["qnc"] is not None else 9.0), round(r["auc"], 6), -r["k"])


VARIANTS: dict[str, tuple[Grid, bool, bool, Callable[[dict[str, Any]], tuple[float, ...]]]] = {
    "base": (BASE, False, False, by_auc), "ppcost": (BASE, True, False, by_auc),
    "base-valqnc": (BASE, False, False, by_qnc), "ppcost-valqnc": (BASE, True, False, by_qnc),
    "fine": (FINE, False, False, by_auc), "fine-ppcost": (FINE, True, False, by_auc),
    "fine-ppcost-valqnc": (FINE, True, False, by_qnc),
    "blend": (BASE, False, True, by_auc), "blend-ppcost": (BASE, True, True, by_auc),
    "blend-ppcost-valqnc": (BASE, True, True, by_qnc),
}


def run_variant(run: Run, name: str, seeds: range, folds: int) -> dict[str, Any]:
    per_seed: list[dict[str, Any]] = []
    for seed in seeds:
        tr, va, te = split(len(run.d), seed, (0.6, 0.2, 0.2))
        pool = np.concatenate([tr, va])
        if name == "ridge":
            lam, (auc, qnc) = run.ridge(tr, va, te)
            per_seed.append({"seed": seed, "auc": auc, "qnc": qnc, "choice": {"lambda": lam}})
            continue
        if name == "hier":
            hc = max(run.hier(tr, va, seed), key=by_auc)
            auc, qnc = run.test_hier(hc, tr, pool, te, seed)
            per_seed.append({"seed": seed, "auc": auc, "qnc": qnc,
                             "choice": {k: hc[k] for k in ("k", "k0", "assignment", "tau", "alpha")}})
            continue
        if name == "cv":
            perm = np.array_split(np.random.default_rng(seed + 77).permutation(len(pool)), folds)
            summed: dict[tuple[Any, ...], list[float]] = {}
            for f in range(folds):
                f_va = pool[np.sort(perm[f])]
                f_tr = pool[np.sort(np.concatenate([perm[g] for g in range(folds) if g != f]))]
                for r in run.candidates(f_tr, f_va, seed, BASE, False, False):
                    summed.setdefault((r["k"], r["assignment"], r["tau"], r["alpha"]), []).append(r["auc"])
            key = max(summed, key=lambda s: (round(float(np.mean(summed[s])), 6), -s[0]))
            ch: dict[str, Any] = {"k": key[0], "assignment": key[1], "tau": key[2], "alpha": key[3], "b": 1.0,
                                  "knn_k": 0}
            ppcost = False
        else:
            grid, ppcost, blend, key_fn = VARIANTS[name]
            ch = max(run.candidates(tr, va, seed, grid, ppcost, blend), key=key_fn)
        auc, qnc = run.test(ch, tr, pool, te, seed, ppcost)
        per_seed.append({"seed": seed, "auc": auc, "qnc": qnc,
                         "choice": {k: ch[k] for k in ("k", "assignment", "tau", "alpha", "b", "knn_k")}})
    aucs = [float(s["auc"]) for s in per_seed]
    reached = [float(s["qnc"]) for s in per_seed if s["qnc"] is not None]
    return {"variant": name, "auc_mean": float(np.mean(aucs)), "auc_std": float(np.std(aucs)),
            "qnc_mean": float(np.mean(reached)) if reached else None, "qnc_reached": f"{len(reached)}/{len(aucs)}",
            "seeds": per_seed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--embeddings", help="a .npy cache of the prompt embeddings (written when missing)")
    ap.add_argument("--variants", default=",".join([*VARIANTS, "cv", "hier", "ridge"]))
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--out", default="bench/results/router_eval_variants.json")
    args = ap.parse_args()
    data = read_labelled(sorted(glob.glob("bench/data/routerbench/*.csv.gz")))
    if args.embeddings and Path(args.embeddings).is_file():
        x = np.load(args.embeddings)
    else:
        from perilune.router.embedder import make_embedder

        emb = make_embedder(args.embedder)
        x = emb.embed(data.prompts)
        if args.embeddings:
            np.save(args.embeddings, x)
    run = Run(data, x)
    results = []
    for name in args.variants.split(","):
        r = run_variant(run, name, range(args.seeds), args.folds)
        qnc = "never" if r["qnc_mean"] is None else f"{100 * r['qnc_mean']:.1f} %"
        per = [None if s["qnc"] is None else round(100 * s["qnc"]) for s in r["seeds"]]
        print(f"{name:20s} AUC {r['auc_mean']:.4f} ± {r['auc_std']:.4f}  quality-neutral cost {qnc} "
              f"({r['qnc_reached']}) per seed {per}", flush=True)
        results.append(r)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"embedder": args.embedder, "prompts": len(data), "results": results},
                                         indent=1))


if __name__ == "__main__":
    main()
