"""Bounded per-subscriber buffers between the sequencer and the streaming rpcs.

The sequencer never waits for a subscriber: it appends the published batch to each
subscriber's buffer. A subscriber whose buffer is full is marked as overflowed and its
stream ends with RESOURCE_EXHAUSTED (the client resubscribes from where it was).
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class Overflowed(Exception):  # noqa: N818 - a state, not an error of the caller
    """The subscriber fell more than its buffer behind and was disconnected."""


class Closed(Exception):  # noqa: N818
    """The engine is stopping; the stream ends."""


class Subscriber(Generic[T]):
    """A bounded buffer of published items (one per batch) for one stream."""

    __slots__ = ("_closed", "_event", "_items", "maxlen", "overflowed")

    def __init__(self, maxlen: int) -> None:
        self._items: deque[T] = deque()
        self._event = asyncio.Event()
        self.maxlen = maxlen
        self.overflowed = False
        self._closed = False

    def push(self, item: T) -> None:
        """Called by the sequencer; never blocks."""
        if self.overflowed or self._closed:
            return
        if len(self._items) >= self.maxlen:
            self.overflowed = True
            self._items.clear()
        else:
            self._items.append(item)
        self._event.set()

    def close(self) -> None:
        self._closed = True
        self._event.set()

    async def get(self) -> list[T]:
        """Everything buffered (waits for at least one item); raises Overflowed or Closed."""
        while not self._items:
            if self.overflowed:
                raise Overflowed
            if self._closed:
                raise Closed
            self._event.clear()
            await self._event.wait()
        if self.overflowed:
            raise Overflowed
        items = list(self._items)
        self._items.clear()
        return items
