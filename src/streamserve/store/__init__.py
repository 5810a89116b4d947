"""Stored responses: a small storage interface, its SQLite and PostgreSQL implementations.

It imports nothing from the rest of the server: bodies are JSON bytes the API layer writes.
"""

from streamserve.store.base import (
    BrokenChainError,
    ChainLink,
    Ending,
    EndOrphan,
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
from streamserve.store.choose import is_shared, make_store
from streamserve.store.sqlite import SQLiteStore, check_data_dir
from streamserve.store.watch import Watch

__all__ = [
    "BrokenChainError",
    "ChainLink",
    "EndOrphan",
    "Ending",
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
    "Watch",
    "check_data_dir",
    "is_shared",
    "make_store",
]
