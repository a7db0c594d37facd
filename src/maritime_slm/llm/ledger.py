"""What every model call cost: an append-only per-attempt log (`calls.jsonl`) and its sum (`ledger.csv`).

The log is the source of truth: one line per HTTP attempt (sent to a server, paid or failed), per cache hit and
per final outcome. `ledger.csv` sums the whole log, so a run killed and resumed still reports everything it paid
for; `rows(scope="session")` sums only what this process did. Lines never hold an API key (details are redacted
by the client before they get here).

An attempt line also names the model the server says it ran (`served_model`, `system_fingerprint`) and counts
cached input and reasoning tokens. A timed-out attempt is charged an estimate of its input (`usd_estimated`):
the server has probably processed and billed it.
"""

from __future__ import annotations

import csv
import json
import os
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ..config import ModelEndpoint

LEDGER_COLUMNS = (
    "teacher",
    "category",
    "requests",
    "cache_hits",
    "input_tokens",
    "output_tokens",
    "usd",
    "failures",
    "cached_input_tokens",
    "reasoning_tokens",
)
Scope = Literal["run", "session"]


def cost_usd(
    input_tokens: int,
    output_tokens: int,
    price_in_per_m: float,
    price_out_per_m: float,
    cached_input_tokens: int = 0,
    price_cached_in_per_m: float | None = None,
) -> float:
    """`input_tokens` include the cached ones (as in OpenAI's usage); those are priced at the cached price."""
    cached = min(cached_input_tokens, input_tokens)
    cached_price = price_in_per_m if price_cached_in_per_m is None else price_cached_in_per_m
    input_usd = (input_tokens - cached) * price_in_per_m + cached * cached_price
    return (input_usd + output_tokens * price_out_per_m) / 1e6


@dataclass(frozen=True)
class Prices:
    """USD per 1M tokens one call is billed at (`cached_in_per_m` None: cached input at the input price)."""

    in_per_m: float
    out_per_m: float
    cached_in_per_m: float | None = None

    def usd(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0) -> float:
        return cost_usd(
            input_tokens,
            output_tokens,
            self.in_per_m,
            self.out_per_m,
            cached_input_tokens,
            self.cached_in_per_m,
        )


def endpoint_prices(endpoint: ModelEndpoint, *, batch: bool = False) -> Prices:
    """The endpoint's sync prices, or its Batch API prices: those it states, else half the sync prices (OpenAI's
    Batch API bills input and output at 50 %)."""
    sync = Prices(endpoint.price_in_per_m, endpoint.price_out_per_m, endpoint.price_cached_in_per_m)
    if not batch:
        return sync
    mode = endpoint.batch
    cached = mode.price_cached_in_per_m
    if cached is None and sync.cached_in_per_m is not None:
        cached = sync.cached_in_per_m / 2
    return Prices(
        sync.in_per_m / 2 if mode.price_in_per_m is None else mode.price_in_per_m,
        sync.out_per_m / 2 if mode.price_out_per_m is None else mode.price_out_per_m,
        cached,
    )


@dataclass
class LedgerRow:
    teacher: str
    category: str
    requests: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    usd: float = 0.0
    failures: int = 0
    cached_input_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "attempt":
            self.requests += 1
            self.input_tokens += int(event.get("input_tokens") or 0)
            self.output_tokens += int(event.get("output_tokens") or 0)
            self.usd += float(event.get("usd") or 0.0)
            self.cached_input_tokens += int(event.get("cached_input_tokens") or 0)
            self.reasoning_tokens += int(event.get("reasoning_tokens") or 0)
        elif kind == "cache_hit":
            self.cache_hits += 1
        elif kind == "outcome" and event.get("status") == "failure":
            self.failures += 1


class Ledger:
    """Shared by every client of a run (teachers, editor, judge); rows keyed by (teacher, category)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.log_path = self.folder / "calls.jsonl"
        self.csv_path = self.folder / "ledger.csv"
        self.session = uuid.uuid4().hex[:12]
        self._lock = threading.Lock()
        self._run: dict[tuple[str, str], LedgerRow] = {}
        self._session: dict[tuple[str, str], LedgerRow] = {}
        for event in read_log(self.log_path):
            _row(self._run, event).add(event)
        self._fd = os.open(self.log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if not _ends_with_newline(self.log_path):
            os.write(self._fd, b"\n")  # end a line cut by a crash so the next one stays parseable

    def record(self, event: str, teacher: str, category: str, **fields: Any) -> None:
        """Append one line and count it. One `os.write` per line keeps lines whole under concurrent appenders."""
        line = {"ts": round(time.time(), 3), "session": self.session, "event": event, "teacher": teacher}
        line |= {"category": category, **{k: v for k, v in fields.items() if v is not None}}
        data = (json.dumps(line, ensure_ascii=False, default=str) + "\n").encode("utf-8")
        with self._lock:
            os.write(self._fd, data)
            _row(self._run, line).add(line)
            _row(self._session, line).add(line)

    def rows(self, scope: Scope = "run") -> list[LedgerRow]:
        with self._lock:
            table = self._run if scope == "run" else self._session
            return [LedgerRow(**asdict(row)) for _, row in sorted(table.items())]

    def totals(self, scope: Scope = "run") -> LedgerRow:
        total = LedgerRow("all", "all")
        for row in self.rows(scope):
            for column in LEDGER_COLUMNS[2:]:
                setattr(total, column, getattr(total, column) + getattr(row, column))
        return total

    def total_usd(self, scope: Scope = "run") -> float:
        return self.totals(scope).usd

    def write_csv(self, path: str | Path | None = None) -> Path:
        """Write the whole run's rows (atomically: a reader never sees half a file)."""
        target = Path(path) if path else self.csv_path
        tmp = target.with_suffix(target.suffix + ".tmp")
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(LEDGER_COLUMNS)
            for row in self.rows("run"):
                values = asdict(row)
                values["usd"] = round(values["usd"], 8)
                writer.writerow([values[c] for c in LEDGER_COLUMNS])
        os.replace(tmp, target)
        return target

    def close(self) -> None:
        with self._lock:
            if self._fd >= 0:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.write_csv()
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({str(self.folder)!r}, session={self.session!r})"


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """All whole lines of a call log (a line cut by a crash is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    events = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def ledger_rows(log_path: str | Path) -> list[LedgerRow]:
    """Ledger rows summed from a call log, for readers that never opened the Ledger (the cost notebook)."""
    table: dict[tuple[str, str], LedgerRow] = {}
    for event in read_log(log_path):
        _row(table, event).add(event)
    return [row for _, row in sorted(table.items())]


def _row(table: dict[tuple[str, str], LedgerRow], event: dict[str, Any]) -> LedgerRow:
    key = (str(event.get("teacher", "")), str(event.get("category", "")))
    if key not in table:
        table[key] = LedgerRow(*key)
    return table[key]


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as f:
        if f.seek(0, os.SEEK_END) == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"
