"""perilune's built-in provider simulator.

A raw ASGI3 application that speaks the OpenAI, Anthropic and Gemini wire
formats with deterministic output, exact usage accounting and fault injection.
See :mod:`perilune.sim.app` for the knobs and :func:`perilune.sim.app.run` to
serve it.
"""

from .app import create_app, make_server, run
from .common import SimConfig

__all__ = ["SimConfig", "create_app", "make_server", "run"]
