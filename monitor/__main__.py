"""`python -m monitor` runs the tpmon command."""

import sys

from .cli import main

sys.exit(main())
