"""The rotation ring of an online source: which number a new session gets.

A number is reserved while a session holding it is live (its last pageview, ping or
click_to_call is less than the source's idle timeout ago; "hidden" does not extend it). Its
`reserved_until` is the latest expiry of the sessions it was given to, so it only grows, and a
free number's `reserved_until` is the moment it was released.

The ring is a binary heap of (reserved_until, config index), one entry per number, fixed up
lazily: activity only raises a number's `reserved_until` (O(1), no heap work), and
`least_recent()` re-files stale entries it finds at the top. The top is then both the number
free the longest (least recently released, ties by config order), when it is free, and, when
every number is reserved, the number whose holders have been idle the longest: the one the
"share" overflow policy hands out. Amortised cost: O(log n) per visit and per activity, plus
O(h) where h is the number of live sessions sharing the number (1 unless the pool is short).

With several processes sharing a database (scale-out), a process only hands out the numbers
it holds a lease on: `owned` restricts the heap to those (None: every number, one process).
The other numbers keep their reservations up to date all the same, from the sessions the
process learns of, so a number that changes hands goes on with its place in the LRU order.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gateway.engine.results import PoolStats

if TYPE_CHECKING:
    from gateway.engine.state import NumberSlot, Session, SourceRuntime


class Ring:
    """A min-heap of a pool's numbers keyed on (reserved_until, config index)."""

    __slots__ = ("heap", "owned", "slots")

    def __init__(self, slots: Sequence[NumberSlot]) -> None:
        self.slots = tuple(slots)
        self.heap: list[tuple[float, int]] = []
        self.owned: frozenset[int] | None = None  # config indexes this process may hand out
        self.rebuild()

    def rebuild(self) -> None:
        """Re-key every entry (after a restore sets reserved_until directly)."""
        owned = self.owned
        self.heap = [(slot.reserved_until, slot.index) for slot in self.slots
                     if owned is None or slot.index in owned]
        heapq.heapify(self.heap)

    def restrict(self, owned: frozenset[int] | None) -> None:
        """Hand out only the numbers at these config indexes (None: all of them)."""
        if owned != self.owned:
            self.owned = owned
            self.rebuild()

    def least_recent(self) -> NumberSlot | None:
        """The number with the earliest reserved_until (free the longest, or idle the longest),
        among those this process owns; None when it owns none of the pool."""
        heap, slots = self.heap, self.slots
        if not heap:
            return None
        while True:
            key, index = heap[0]
            slot = slots[index]
            if slot.reserved_until == key:
                return slot
            heapq.heapreplace(heap, (slot.reserved_until, index))


def live_holders(slot: NumberSlot, at: float) -> list[Session]:
    """The sessions live on `slot` at `at` (expired ones are dropped from the list)."""
    holders = slot.holders
    idle = slot.source.idle
    for holder in holders:
        if holder.last_activity + idle <= at:
            # A session revived after its expiry may be listed twice: once is enough.
            holders = slot.holders = list(dict.fromkeys(
                h for h in holders if h.last_activity + idle > at))
            break
    slot.pruned = len(holders)
    return holders


def add_holder(slot: NumberSlot, session: Session, at: float) -> None:
    """Append a holder; expired ones are pruned once the list has doubled since the last
    pruning, so a number shared by many live sessions costs O(1) amortised per visit."""
    slot.holders.append(session)
    if len(slot.holders) > 2 * slot.pruned + 8:
        live_holders(slot, at)


def hold(slot: NumberSlot, session: Session, at: float) -> tuple[bool, list[Session]]:
    """Make `session` (new, or expired before `at`) a holder of `slot`.

    Returns whether another live session holds the number (a sharing: the caller counts it and
    marks `session` shared) and which of those are not marked shared yet. A reserved number has
    a live holder (its reservation is its holders' latest expiry), and once the caller has
    marked a sharing every holder is marked (`slot.marked`), so a busy number is not scanned.
    """
    if slot.reserved_until <= at:  # free: every earlier holder has expired
        slot.holders = [session]
        slot.pruned = 1
        slot.marked = False
        extend(slot, session)
        return False, []
    unmarked = [] if slot.marked else [h for h in live_holders(slot, at) if not h.shared]
    slot.marked = True  # the caller marks `unmarked` and `session` shared
    add_holder(slot, session, at)
    extend(slot, session)
    return True, unmarked


def extend(slot: NumberSlot, session: Session) -> None:
    """Raise the slot's reservation to cover the session's latest activity."""
    until = session.last_activity + slot.source.idle
    slot.reserved_until = max(slot.reserved_until, until)


def pool_stats(source: SourceRuntime, at: float) -> PoolStats:
    """The pool of an online source at `at`: reserved, cooling (released less than one idle
    timeout ago) and free numbers, with the source's counters."""
    reserved = cooling = 0
    for slot in source.pool:
        if slot.reserved_until > at:
            reserved += 1
        elif at - slot.reserved_until < source.idle:
            cooling += 1
    live = sum(len(set(live_holders(slot, at))) for slot in source.slots())
    size = len(source.pool)
    owned = source.ring.owned if source.ring is not None else None
    return PoolStats(source.site.key, source.name, size, reserved, cooling,
                     size - reserved - cooling, source.sharings, source.tracked, live,
                     source.overflowed, -1 if owned is None else len(owned))
