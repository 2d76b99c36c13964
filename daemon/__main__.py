"""`python -m tokenstation.daemon` runs the `tokenstation` command."""

import sys

from .cli import program

sys.exit(program())
