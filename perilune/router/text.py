"""The part of a prompt an embedder sees."""

from __future__ import annotations

# Long prompts are embedded from their last MAX_CHARS characters: few-shot prompts put the examples
# first and the question last. Measured on the routing data (perilune router eval), the tail did as
# well as head + tail or more.
MAX_CHARS = 1000


def clip(text: str, max_chars: int = MAX_CHARS) -> str:
    """The text an embedder sees: all of a short text, the end of a long one."""
    return text if len(text) <= max_chars else text[-max_chars:]
