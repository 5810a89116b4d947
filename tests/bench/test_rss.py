"""bench/rss.py: a live process's resident memory is read; a gone one gives None."""

from __future__ import annotations

import os

from streamserve.bench.rss import read_rss


def test_reads_this_process_and_not_a_missing_one() -> None:
    rss = read_rss(os.getpid())
    assert rss is not None and rss > 10 * 2**20
    assert read_rss(2**22 + 12345) is None
