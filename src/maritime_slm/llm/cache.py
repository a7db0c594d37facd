"""Persistent request cache: a finished model call is paid for once, even across `kill -9` and resumed runs.

SQLite in WAL mode, one autocommitted row per finished call: the row is in the WAL (the OS page cache) before
`put` returns, so a killed process loses at most the calls still in flight. Several processes may share a file.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    text TEXT,
    refusal TEXT,
    finish_reason TEXT,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    created_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class CachedResponse:
    """The parts of a chat completion the client needs to re-derive its result without the server."""

    text: str | None
    finish_reason: str | None
    input_tokens: int = 0
    output_tokens: int = 0
    refusal: str | None = None


def request_key(body: Mapping[str, Any]) -> str:
    """A hash of everything that determines the reply: model, messages, sampling params, response format.

    The server address is deliberately not part of it (the local server gets a new port every run).
    """
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class RequestCache:
    """Key -> response text, finish_reason and usage. Thread-safe; usable from many asyncio tasks."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(_SCHEMA)

    def get(self, key: str) -> CachedResponse | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT text, finish_reason, input_tokens, output_tokens, refusal FROM responses WHERE key = ?",
                (key,),
            ).fetchone()
        return None if row is None else CachedResponse(*row)

    def put(self, key: str, model: str, response: CachedResponse) -> None:
        """Commit immediately: this is what makes a resumed run skip every finished call."""
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    model,
                    response.text,
                    response.refusal,
                    response.finish_reason,
                    response.input_tokens,
                    response.output_tokens,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return self._conn.execute("SELECT 1 FROM responses WHERE key = ?", (key,)).fetchone() is not None

    def __len__(self) -> int:
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> RequestCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RequestCache({str(self.path)!r})"
