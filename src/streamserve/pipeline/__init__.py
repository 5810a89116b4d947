"""The request pipeline every API family goes through: a generation driven through its wire format's formatter."""

from streamserve.pipeline.driver import DATA_ONLY, NAMED, Formatter, Framing, Observer, collect, drive, observed, stream

__all__ = ["DATA_ONLY", "NAMED", "Formatter", "Framing", "Observer", "collect", "drive", "observed", "stream"]
