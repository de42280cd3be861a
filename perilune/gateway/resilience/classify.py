"""Which failures fall through to the next deployment, and which say the request itself is wrong."""

from __future__ import annotations

import re

from perilune.errors import PeriluneError, UpstreamError, UpstreamRejected

# How providers word "the prompt does not fit" (OpenAI code context_length_exceeded; Anthropic
# "prompt is too long"; Gemini "exceeds the maximum number of tokens"; vLLM "maximum context length").
_CONTEXT = re.compile(r"context[ _]length|context window|maximum context|prompt is too long|"
                      r"too many (?:input )?tokens|exceeds the maximum number of tokens|input is too long",
                      re.IGNORECASE)


def is_context_overflow(e: PeriluneError) -> bool:
    """The upstream refused the prompt as too long for the model's context."""
    if not isinstance(e, UpstreamRejected):
        return False
    return bool((e.code and "context_length" in e.code) or _CONTEXT.search(e.message))


def falls_through(e: PeriluneError) -> bool:
    """Connection errors, timeouts, 429, 5xx, overloaded: the next deployment may serve the request.
    Any other 4xx is the request's fault and is returned to the client as it is."""
    return isinstance(e, UpstreamError) and e.retryable


def is_deployment_failure(e: PeriluneError) -> bool:
    """Counts against the deployment's health (a bad request or a too-long prompt does not)."""
    return falls_through(e)
