"""A USD cap shared by a run: a call is sent only if its worst-case cost still fits, so the cap is never crossed.

Each call reserves an upper bound of its cost before it is sent and settles the actual cost when it returns.
The bound is strict for byte-level BPE tokenizers (GPT-4o's, SmolLM2's): every token covers at least one byte,
so the UTF-8 size of the request body bounds its input tokens, and the server never returns more than
`max_tokens` output tokens. When a reservation does not fit, the budget waits for in-flight calls to settle;
if it still does not fit with nothing in flight, the budget is exhausted for good and every later call fails
fast with `budget`.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .ledger import cost_usd


class BudgetExceeded(RuntimeError):
    """The next call's worst-case cost does not fit in a budget (`budget`: the one that refused)."""

    def __init__(self, message: str, budget: Budget | None = None):
        super().__init__(message)
        self.budget = budget


def max_input_tokens(body: Mapping[str, Any]) -> int:
    """An upper bound of a request's input tokens: the UTF-8 size of its JSON body (schema included)."""
    return len(json.dumps(body, ensure_ascii=False, default=str).encode("utf-8"))


def estimated_input_tokens(body: Mapping[str, Any]) -> int:
    """~4 characters per token over the messages: what a request that got no reply was probably billed for."""
    return sum(len(str(m.get("content") or "")) for m in body.get("messages", [])) // 4


def worst_case_usd(
    body: Mapping[str, Any], max_tokens: int, price_in_per_m: float, price_out_per_m: float
) -> float:
    return cost_usd(max_input_tokens(body), max_tokens, price_in_per_m, price_out_per_m)


@dataclass
class Reservation:
    usd: float
    open: bool = True
    parent: Reservation | None = None


class Budget:
    """`limit_usd=None` means no cap. `spent_usd` seeds what a resumed run already paid (`Ledger.total_usd()`).

    A `line` of a budget (one role's share of a stage: a teacher, the editor, the judge) is capped by its own limit
    and by the budget above it, and what it spends counts there too. What a line has not spent yet is held for it:
    the other roles of the stage cannot use it, so teacher answers never eat what the judge needs.
    """

    def __init__(self, limit_usd: float | None, spent_usd: float = 0.0, parent: Budget | None = None):
        self.limit_usd = limit_usd
        self.spent_usd = spent_usd
        self.reserved_usd = 0.0
        self.exhausted = False
        self.parent = parent
        self._lock = threading.Lock()
        self._settled: asyncio.Event | None = None
        self._lines: list[Budget] = []

    def line(self, limit_usd: float | None, spent_usd: float = 0.0) -> Budget:
        """A child budget for one role; `spent_usd` seeds what that role already paid in this run folder.
        A line with a limit holds what it has not spent (see the class)."""
        child = Budget(limit_usd, spent_usd, parent=self)
        if limit_usd is not None:
            with self._lock:
                self._lines.append(child)
        return child

    @property
    def unspent_usd(self) -> float:
        """What this budget can still spend on its own terms (infinite without a limit)."""
        if self.limit_usd is None:
            return float("inf")
        return max(0.0, self.limit_usd - self.spent_usd - self.reserved_usd)

    def held_usd(self, for_line: Budget | None = None) -> float:
        """What the lines of this budget, other than `for_line`, have not spent yet: held for them."""
        return sum(line.unspent_usd for line in self._lines if line is not for_line)

    @property
    def remaining_usd(self) -> float:
        own = self.unspent_usd
        if self.parent is None:
            return own
        return min(own, max(0.0, self.parent.remaining_usd - self.parent.held_usd(self)))

    def try_reserve(self, usd: float, _line: Budget | None = None) -> Reservation:
        """Reserve now (here and in the budgets above) or raise BudgetExceeded (free calls always fit)."""
        with self._lock:
            held = self.held_usd(_line) if self.limit_usd is not None and usd > 0 else 0.0
            fits = (
                self.limit_usd is None
                or usd <= 0
                or self.spent_usd + self.reserved_usd + held + usd <= self.limit_usd
            )
            if not fits or (self.exhausted and usd > 0):
                raise BudgetExceeded(self._explain(usd, held), self)
            self.reserved_usd += usd
        try:
            above = self.parent.try_reserve(usd, self) if self.parent is not None else None
        except BudgetExceeded:
            with self._lock:
                self.reserved_usd = max(0.0, self.reserved_usd - usd)
            raise
        return Reservation(usd, parent=above)

    async def reserve(self, usd: float) -> Reservation:
        """Reserve, waiting for in-flight calls to settle when that could make room where it was refused."""
        while True:
            try:
                return self.try_reserve(usd)
            except BudgetExceeded as exc:
                settled = (exc.budget or self)._settled_event()
                if settled is None:
                    with self._lock:
                        self.exhausted = True  # this budget (or line) for good; a sibling line keeps its own
                    raise
            await settled.wait()

    def _settled_event(self) -> asyncio.Event | None:
        """What to wait for before trying again; None when nothing is in flight (waiting cannot help)."""
        with self._lock:
            if self.reserved_usd <= 0 or self.exhausted:
                return None
            if self._settled is None:
                self._settled = asyncio.Event()
            return self._settled

    def settle(self, reservation: Reservation, actual_usd: float) -> None:
        """Replace a reservation by what the call actually cost."""
        self._close(reservation, actual_usd)

    def release(self, reservation: Reservation) -> None:
        """A call that was not paid for (HTTP error, cancelled) gives its reservation back."""
        self._close(reservation, 0.0)

    def _close(self, reservation: Reservation, actual_usd: float) -> None:
        with self._lock:
            if not reservation.open:
                return
            reservation.open = False
            self.reserved_usd = max(0.0, self.reserved_usd - reservation.usd)
            self.spent_usd += actual_usd
            settled, self._settled = self._settled, None
        if settled is not None:
            settled.set()
        if self.parent is not None and reservation.parent is not None:
            self.parent._close(reservation.parent, actual_usd)

    def _explain(self, usd: float, held: float = 0.0) -> str:
        if self.limit_usd is None:
            return f"budget line without a limit of its own: stopped by the budget above it (spent ${self.spent_usd:.4f})"
        lines = f", held for other roles' lines ${held:.4f}" if held else ""
        return (
            f"{'budget line' if self.parent else 'budget'} ${self.limit_usd:.4f}: spent ${self.spent_usd:.4f}, "
            f"in flight ${self.reserved_usd:.4f}{lines}, next call may cost up to ${usd:.4f}"
        )

    def __repr__(self) -> str:
        limit = "none" if self.limit_usd is None else f"${self.limit_usd:.4f}"
        return f"Budget(limit={limit}, spent=${self.spent_usd:.4f}, reserved=${self.reserved_usd:.4f})"
