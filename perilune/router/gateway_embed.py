"""``router.embedder = "gateway:<model>"``: prompts embedded by an embedding model this gateway serves.

At decision time the embedding is a request of its own through the gateway's normal path (the
caller's key, balance and limits, the model's providers and fallbacks), so it is billed to the calling
key and leaves its own usage record (endpoint ``embeddings``, its own request id); a cached prompt
costs nothing. Profiles for such an embedder are built with ``perilune router build --embedder
gateway:<model> --base-url URL`` (and ``PERILUNE_API_KEY``), which embeds the labelled prompts
through a running gateway over HTTP: the same model, hence the same space.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import orjson

from perilune.errors import PeriluneError, ServiceUnavailable
from perilune.router.text import clip

if TYPE_CHECKING:
    from perilune.api.common import Ctx

PREFIX = "gateway:"
Vector = npt.NDArray[np.float32]


def gateway_model(spec: str) -> str | None:
    """The model of a ``gateway:<model>`` setting (None for any other embedder)."""
    if not spec.startswith(PREFIX):
        return None
    model = spec[len(PREFIX):].strip()
    if not model:
        raise ValueError("router.embedder = \"gateway:<model>\" needs a model id after the colon")
    return model


def _unit(values: Sequence[float], dim: int) -> Vector:
    v = np.asarray(values, dtype=np.float32)
    if v.shape != (dim,):
        raise ServiceUnavailable(f"the router's embedding model returned {v.size} dimensions; its profiles "
                                 f"have {dim}", code="router_embedding_mismatch")
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


class GatewayEmbedder:
    """The served model ``model`` as the router's embedder: in-process, per request (see :meth:`embed_for`)."""

    def __init__(self, model: str, dim: int) -> None:
        self.model, self.dim, self.name = model, dim, f"{PREFIX}{model}"

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        raise RuntimeError("the gateway embedder bills each embedding to a request: use embed_for(ctx, text)")

    async def embed_for(self, ctx: Ctx, text: str) -> Vector:
        """One embeddings request on behalf of ``ctx``'s key, through the gateway's own pipeline."""
        from perilune.api.common import new_request_id
        from perilune.gateway.lifecycle import Lifecycle
        from perilune.gateway.pipeline import Call
        from perilune.gateway.relay import OpenAIEncoder
        from perilune.providers.base import EMBEDDINGS

        s, parent = ctx.services, ctx.lifecycle
        lc = Lifecycle(ctx.request, request_id=new_request_id(), dialect="openai", endpoint="embeddings",
                       billing=s.billing, pipeline=s.pipeline, recorder=s.recorder, streams=s.streams, records=True)
        lc.principal, lc.app_id, lc.model_requested = parent.principal, parent.app_id, self.model
        body = {"model": self.model, "input": text}
        call = Call(EMBEDDINGS, self.model, body, prompt_tokens=_tokens(text), generates=False)
        try:
            resp = await lc.serve(call, lambda _native: OpenAIEncoder(include_usage=False, capture=False))
            data = orjson.loads(resp.body)  # type: ignore[attr-defined]
            return _unit(data["data"][0]["embedding"], self.dim)
        except PeriluneError as e:
            lc.fail(e)
            raise
        except (KeyError, IndexError, TypeError, orjson.JSONDecodeError):
            err = ServiceUnavailable(f"the router's embedding model {self.model!r} answered without an embedding",
                                     code="router_embedding_failed")
            lc.fail(err)
            raise err from None
        finally:
            await lc.finish()


def _tokens(text: str) -> int:
    from perilune.accounting import estimate

    return estimate.text_prompt_tokens(text)


class HttpEmbedder:
    """For ``perilune router build``: the labelled prompts embedded through a running gateway."""

    def __init__(self, model: str, base_url: str, api_key: str, batch: int = 64, timeout_s: float = 120.0) -> None:
        import httpx  # only `perilune router build` needs an HTTP client: the gateway starts without it

        self.model, self.name, self.batch = model, f"{PREFIX}{model}", batch
        self.dim = 0  # known after the first answer
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout_s,
                                    headers={"Authorization": f"Bearer {api_key}"})

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        rows: list[Vector] = []
        for i in range(0, len(texts), self.batch):
            chunk = [clip(t) or " " for t in texts[i:i + self.batch]]
            r = self._client.post("/v1/embeddings", json={"model": self.model, "input": chunk})
            if r.status_code != 200:
                raise RuntimeError(f"the gateway refused the embeddings request ({r.status_code}): {r.text[:300]}")
            items = sorted(r.json()["data"], key=lambda d: d["index"])
            for item in items:
                self.dim = self.dim or len(item["embedding"])
                rows.append(_unit(item["embedding"], self.dim))
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)
