"""``python -m landscape``: the ``landscape`` command line."""
import sys

from landscape.cli import main

sys.exit(main())
