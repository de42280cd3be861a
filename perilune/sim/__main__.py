"""``python -m perilune.sim``: the same as ``perilune sim`` (see ``perilune sim --help``)."""

import sys

from perilune.cli import app

app(["sim", *sys.argv[1:]], prog_name="python -m perilune.sim")
