"""``python -m streamserve.bench compare|load``: the bench subcommands without the main CLI."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
