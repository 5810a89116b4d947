"""Make the ``bench`` extra's packages (matplotlib, rich) unimportable in this process, as if not installed.

With this directory first on ``PYTHONPATH``, Python imports this module at startup, before any
``-m`` or ``-c`` code runs. Every import of either package (or of one of its modules) then fails the
way a missing package does (``ModuleNotFoundError``), whether or not it is installed, and is
recorded: at exit, the refused names are appended, one line each, to ``$STREAMSERVE_REFUSED_LOG``.
Nothing is uninstalled; other processes are unaffected.
"""

from __future__ import annotations

import atexit
import os
import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

HIDDEN = ("matplotlib", "rich")
refused: list[str] = []


class _Refuse(MetaPathFinder):
    """Asked first for every import: refuses the hidden packages, leaves the rest to the usual finders."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname.partition(".")[0] not in HIDDEN:
            return None
        refused.append(fullname)
        raise ModuleNotFoundError(f"No module named {fullname!r} (hidden by tests/hidden_extra)", name=fullname)


def _write_log() -> None:
    log = os.environ.get("STREAMSERVE_REFUSED_LOG")
    if log and refused:
        with open(log, "a", encoding="utf-8") as file:
            file.writelines(f"{os.getpid()} {name}\n" for name in refused)


sys.meta_path.insert(0, _Refuse())
atexit.register(_write_log)
