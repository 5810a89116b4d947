"""The ``bench`` extra: matplotlib and rich, which ``streamserve bench`` draws its tables and plots with.

``streamserve serve`` needs neither, so they are not installed with streamserve; ``pip install
'streamserve[bench]'`` adds them. This module only looks for them, importing neither, so that the
command can say in one line what to install instead of failing with a traceback.
"""

from __future__ import annotations

import importlib.util

EXTRA_PACKAGES = ("matplotlib", "rich")
INSTALL = "pip install 'streamserve[bench]'"
EXIT_MISSING = 2  # as for a usage error: nothing was measured


def missing_packages() -> list[str]:
    """The extra's packages that cannot be imported here, in ``EXTRA_PACKAGES`` order."""
    return [name for name in EXTRA_PACKAGES if not _importable(name)]


def missing_extra() -> str | None:
    """The one-line message naming the extra to install when any of its packages is missing, else None."""
    missing = missing_packages()
    if not missing:
        return None
    return f"streamserve bench needs {' and '.join(missing)}, from the 'bench' extra: {INSTALL}"


def _importable(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # blocked by an import hook, or a module without a spec
        return False
