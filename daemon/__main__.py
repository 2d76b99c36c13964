"""`python -m tokenstation.daemon` runs the `tokenstation` command."""

import sys

from .cli import main

sys.exit(main())
