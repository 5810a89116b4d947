"""Stored responses: a small storage interface and its SQLite implementation.

It imports nothing from the rest of the server: bodies are JSON bytes the API layer writes.
"""

from streamserve.store.base import (
    BrokenChainError,
    ChainLink,
    ItemPage,
    ResponseStore,
    StoredEvent,
    StoredItem,
    StoredResponse,
    StoreError,
    StoreLockedError,
    SweepResult,
    UnknownItemError,
)
from streamserve.store.sqlite import SQLiteStore, check_data_dir

__all__ = [
    "BrokenChainError",
    "ChainLink",
    "ItemPage",
    "ResponseStore",
    "SQLiteStore",
    "StoreError",
    "StoreLockedError",
    "StoredEvent",
    "StoredItem",
    "StoredResponse",
    "SweepResult",
    "UnknownItemError",
    "check_data_dir",
]
