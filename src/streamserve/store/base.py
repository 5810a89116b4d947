"""The storage interface for stored responses: records, errors and the ``ResponseStore`` protocol.

The store keeps three things per response: its row (status, the response object as JSON, when it
expires), its input items in order, and the event log of its stream. It knows nothing of the
Responses API's shapes: bodies are opaque JSON bytes, written and read by the layer above.

Writes are ordered and fire-and-forget (they never block the caller); reads are awaited and see
every write submitted before them (read-your-writes), which is what lets a resumed stream switch
from the stored log to live events without losing or repeating one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from streamserve.store.watch import Watch


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """One response's row.

    ``done`` is false while it is queued or generating. ``logged`` says its stream's events are kept
    (until ``events_expire_at``, set when it ends). ``body`` is the response object as JSON.
    """

    id: str
    created_at: float
    status: str
    background: bool
    previous_response_id: str | None
    body: bytes
    expires_at: float
    logged: bool
    done: bool = False
    events_expire_at: float | None = None


RESPONSE_COLUMNS = ("id, created_at, status, background, previous_response_id, body, expires_at, logged, done, "
                    "events_expire_at")
"""The ``responses`` columns every store reads and writes a ``StoredResponse`` as, in its fields' order."""


def response_from_row(row: Sequence[Any]) -> StoredResponse:
    """The ``StoredResponse`` of a row selected as ``RESPONSE_COLUMNS`` (either store's types)."""
    return StoredResponse(
        id=str(row[0]), created_at=float(row[1]), status=str(row[2]), background=bool(row[3]),
        previous_response_id=row[4], body=bytes(row[5]), expires_at=float(row[6]), logged=bool(row[7]),
        done=bool(row[8]), events_expire_at=row[9],
    )


@dataclass(frozen=True, slots=True)
class StoredItem:
    """One input item of a response: its id and the item as JSON."""

    id: str
    body: bytes


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """One event of a response's stream: its sequence number, its type and its JSON data."""

    sequence_number: int
    type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class ItemPage:
    """A page of input items, in the order asked for; ``has_more`` says whether more follow."""

    items: list[StoredItem]
    has_more: bool


@dataclass(frozen=True, slots=True)
class ChainLink:
    """One response of a conversation, with its input items (for rebuilding the conversation)."""

    response: StoredResponse
    items: list[StoredItem]


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one retention sweep removed."""

    responses: int
    event_logs: int


@dataclass(frozen=True, slots=True)
class Ending:
    """How an orphaned response ends: its final status and body, and the event followers read last (if logged)."""

    status: str
    body: bytes
    event: StoredEvent | None
    events_expire_at: float | None


EndOrphan = Callable[[StoredResponse, list[StoredEvent]], Ending]
"""Makes an orphan's ``Ending`` from its row and its logged events (the layer above knows the shapes)."""


class StoreError(Exception):
    """The store cannot do what was asked (a broken database, a locked data directory...)."""


class StoreLockedError(StoreError):
    """Another process already owns this data directory."""


class BrokenChainError(StoreError):
    """A response of a ``previous_response_id`` chain does not exist (never stored, deleted or expired)."""

    def __init__(self, missing_id: str) -> None:
        super().__init__(f"response {missing_id!r} is not stored")
        self.missing_id = missing_id


class UnknownItemError(StoreError):
    """A pagination cursor names an item the response does not have."""


class ResponseStore(Protocol):
    """Where stored responses live; one implementation per database (SQLite, PostgreSQL).

    Write methods return at once and apply in submission order; a failed write is logged, never
    raised to the caller. Read methods see every write submitted before them.

    Every response this store creates is owned by ``replica`` (this process) until it is done. A shared
    store (PostgreSQL) renews this replica's lease while it runs; ``end_orphans`` ends the unfinished
    responses of replicas whose lease has expired, and once ended that way they no longer take writes
    from their old owner.
    """

    replica: str
    """This process's owner id, new at every start: a restarted server owns nothing it owned before."""

    async def open(self) -> None:
        """Create or migrate the schema and take ownership of the data; raises ``StoreError``."""
        ...

    async def close(self) -> None:
        """Apply every pending write, then release the database."""
        ...

    async def flush(self) -> None:
        """Wait until every write submitted so far is applied."""
        ...

    def create(self, response: StoredResponse, items: Sequence[StoredItem]) -> None:
        """Store a new response row and its input items."""
        ...

    def update(self, response_id: str, *, status: str, body: bytes, done: bool,
               events_expire_at: float | None = None) -> None:
        """Replace a response's status and body; ``done`` marks it finished."""
        ...

    def append_event(self, response_id: str, event: StoredEvent) -> None:
        """Append one event to a response's log."""
        ...

    def extend(self, response_ids: Sequence[str], expires_at: float) -> None:
        """Keep these responses at least until ``expires_at`` (an ongoing conversation's history)."""
        ...

    async def get(self, response_id: str) -> StoredResponse | None:
        """One response row, or None."""
        ...

    async def delete(self, response_id: str) -> bool:
        """Remove a response with its items and events; False if there was none."""
        ...

    async def items(self, response_id: str, *, after: str | None, limit: int,
                    order: Literal["asc", "desc"]) -> ItemPage | None:
        """A page of input items after the item ``after``; None if the response does not exist.

        Raises ``UnknownItemError`` if ``after`` is not one of its items.
        """
        ...

    async def events(self, response_id: str, *, after: int, limit: int) -> list[StoredEvent]:
        """Up to ``limit`` logged events with a sequence number above ``after``, in order."""
        ...

    async def chain(self, response_id: str, *, max_depth: int) -> list[ChainLink]:
        """The conversation ending at ``response_id``, oldest response first, each with its input items.

        Follows ``previous_response_id`` links; raises ``BrokenChainError`` naming the first missing one
        (``response_id`` itself included) and ``StoreError`` beyond ``max_depth`` links.
        """
        ...

    async def unfinished(self) -> list[StoredResponse]:
        """Responses not marked done (after a restart: the ones that were running)."""
        ...

    async def last_sequence(self, response_id: str) -> int:
        """The highest logged sequence number of a response, -1 if none."""
        ...

    async def sweep(self, now: float) -> SweepResult:
        """Delete finished responses past ``expires_at`` and event logs past ``events_expire_at``.

        A shared store runs it once per sweep interval across all its replicas (the others return zeros).
        """
        ...

    def watch(self, response_id: str) -> contextlib.AbstractContextManager[Watch]:
        """A ``Watch`` woken when the response's row or event log changes, in this process or another."""
        ...

    def request_cancel(self, response_id: str) -> None:
        """Ask the replica that owns this unfinished response to cancel it (the cancel handler runs there)."""
        ...

    def on_cancel(self, handler: Callable[[str], None]) -> None:
        """Call ``handler(response_id)`` (on the event loop) when a cancel is asked for a response of this replica."""
        ...

    async def end_orphans(self, end: EndOrphan) -> list[str]:
        """End every unfinished response whose owner is gone (``end`` says how), once; returns their ids.

        SQLite: the ones a previous process left running. PostgreSQL: those of replicas whose lease expired.
        """
        ...


def walk_chain(response_id: str, max_depth: int, link: Callable[[str], ChainLink | None]) -> list[ChainLink]:
    """The conversation ending at ``response_id``, oldest first, from ``link`` (one stored response and its
    input items, or None if it is not stored): ``ResponseStore.chain`` for every store, whatever its SQL."""
    links: list[ChainLink] = []
    next_id: str | None = response_id
    while next_id is not None:
        if len(links) >= max_depth:
            raise StoreError(f"the conversation is longer than {max_depth} responses")
        found = link(next_id)
        if found is None:
            raise BrokenChainError(next_id)
        links.append(found)
        next_id = found.response.previous_response_id
    links.reverse()
    return links
