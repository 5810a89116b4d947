"""Argument types and actions the command line shares: durations, and old flag names kept as deprecated aliases.

A deprecated alias writes to its new flag's destination (converting its value if its unit differs) and
records that it was used, so that the server can log one warning line per old name at startup.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from typing import Any

from streamserve.durations import parse_duration

DEPRECATED = "deprecated_flags"
"""The namespace attribute listing the deprecation warnings of the old names a command line used."""


def duration(text: str) -> float:
    """Seconds from a duration flag's value (``500ms``, ``30s``, ``10m``, ``2h``, ``30d``; bare: seconds).

    A malformed value is an argparse error that names the format.
    """
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class DeprecatedAlias(argparse.Action):
    """An old flag name: stores into the new flag's destination and records a deprecation warning.

    ``replacement`` is the new flag; ``convert`` turns the old flag's value into the new one's unit
    (``--prefill-step-ms 500`` stores 0.5 seconds). Its help says which flag to use instead.
    """

    def __init__(self, option_strings: Sequence[str], dest: str, *, replacement: str,
                 convert: Callable[[Any], Any] | None = None, note: str = "", **kwargs: Any) -> None:
        self.replacement = replacement
        self.convert = convert
        kwargs.setdefault("help", f"deprecated, use {replacement}{note}")
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        """Store the (converted) value where the new flag would, and note the old name once."""
        setattr(namespace, self.dest, self.convert(values) if self.convert else values)
        warning = (f"{option_string} is deprecated and will be removed in the next release: "
                   f"use {self.replacement}")
        used: tuple[str, ...] = getattr(namespace, DEPRECATED, ())
        if warning not in used:
            setattr(namespace, DEPRECATED, (*used, warning))


def deprecation_warnings(args: argparse.Namespace) -> tuple[str, ...]:
    """One line per deprecated flag name the command line used, in the order they came."""
    return tuple(getattr(args, DEPRECATED, ()))
