"""``python -m streamserve`` runs the ``streamserve`` command."""

import sys

from streamserve.cli import main

sys.exit(main())
