"""`python -m tokenstation.daemon` runs the `tokenstation` command."""

import sys

from tokenstation.daemon.cli import program

sys.exit(program())
