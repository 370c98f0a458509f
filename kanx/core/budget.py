"""Search budgets that count work, not seconds.

A search stops when it has done a set amount of work, so the same data, seed and options give the
same result on any machine and under any load. The unit is one *work unit*: one row evaluated
by an oracle (the network asked for its value at one point) costs one; each stage that uses a
budget says what its heavier steps cost (the structure search: a 1-D fit, a constant polish).
``WorkBudget`` counts them; an optional wall-clock cap (``seconds``) stays
available as a safety limit, and the budget records when that cap, not the work count, ended
the search, so a report can say so.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class WorkBudget:
    """``limit`` work units, and at most ``seconds`` of wall clock when set (``None``: no clock).

    ``charge(units)`` records work done; ``exhausted()`` says whether to stop. ``cut_by_clock``
    becomes true the first time the clock, and not the work count, stopped the search:
    results are then no longer reproducible, and the report should say so."""

    limit: int
    seconds: float | None = None
    spent: int = 0
    cut_by_clock: bool = False
    started: float = field(default_factory=time.perf_counter, repr=False)

    def charge(self, units: int) -> None:
        """Count ``units`` more work units."""
        self.spent += int(units)

    def exhausted(self) -> bool:
        """Whether the work is spent, or the optional wall-clock cap has passed."""
        if self.spent >= self.limit:
            return True
        if self.seconds is not None and time.perf_counter() - self.started > self.seconds:
            self.cut_by_clock = True
            return True
        return False

    @property
    def left(self) -> int:
        """Work units not yet spent (0 when spent)."""
        return max(self.limit - self.spent, 0)

    def share(self, fraction: float) -> WorkBudget:
        """A new budget of ``fraction`` of this one's limit, under the same clock cap's remainder."""
        seconds = None
        if self.seconds is not None:
            seconds = max(self.seconds - (time.perf_counter() - self.started), 0.0)
        return WorkBudget(max(int(fraction * self.limit), 1), seconds)

    def to_dict(self) -> dict:
        return {"work_limit": self.limit, "work_spent": self.spent, "time_limit_seconds": self.seconds,
                "cut_by_clock": self.cut_by_clock}
