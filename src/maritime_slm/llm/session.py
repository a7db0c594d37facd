"""One stage's model calls: the run's request cache, the stage's ledger and its budget, opened and published once.

Generate, curate (ARF revision) and evaluate (teacher answers, judge) all ask models the same way: answers come
from `<run>/llm/cache.sqlite` when a request was already paid, every call is logged in `<run>/llm/<stage>/`
(outside the stage folder, so a killed stage resumes without paying twice), and the stage's budget starts from what
that log says was spent. When the stage's calls are done, `publish` copies `ledger.csv` and `calls.jsonl` into the
stage folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .budget import Budget
from .cache import RequestCache
from .ledger import Ledger


@dataclass
class LLMSession:
    request_cache: RequestCache | None
    ledger: Ledger | None
    budget: Budget | None
    progress: bool = True

    def spent_by(self) -> dict[str, float]:
        """USD this run folder already paid, per model (teacher, editor, judge)."""
        spent: dict[str, float] = {}
        for row in self.ledger.rows() if self.ledger is not None else []:
            spent[row.teacher] = spent.get(row.teacher, 0.0) + row.usd
        return spent

    def publish(self, stage_dir: Path) -> None:
        """The stage's copy of its ledger and call log."""
        if self.ledger is not None:
            self.ledger.write_csv(Path(stage_dir) / "ledger.csv")
            shutil.copy2(self.ledger.log_path, Path(stage_dir) / "calls.jsonl")


@contextmanager
def llm_session(
    llm_dir: Path, stage: str, budget_usd: float | None, progress: bool = True
) -> Iterator[LLMSession]:
    with Ledger(Path(llm_dir) / stage) as ledger:
        cache = RequestCache(Path(llm_dir) / "cache.sqlite")
        yield LLMSession(cache, ledger, Budget(budget_usd, spent_usd=ledger.total_usd()), progress)
