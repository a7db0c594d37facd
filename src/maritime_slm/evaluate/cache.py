"""A persistent cache of predictions (and judge grades), so re-running the evaluate stage costs nothing.

It lives outside the stage folder (`<run>/predictions_cache/predictions.sqlite`: the runner swaps the stage folder
in atomically on success, so anything inside it would be lost with a failed run). One row per answer, keyed by
the model's identity (base weights + adapter hash + inference settings, or an API endpoint's model and
sampling settings), the item id, a hash of the prompt and the token limit. Rows are committed one by one as they
are produced, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

CACHE_FILE = "predictions.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    item_id TEXT NOT NULL,
    value TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


def identity_hash(identity: Mapping[str, Any]) -> str:
    text = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prediction_key(
    identity: Mapping[str, Any], item_id: str, prompt_hash: str, max_tokens: int | None
) -> str:
    return identity_hash(
        {"model": identity, "item": item_id, "prompt": prompt_hash, "max_tokens": max_tokens}
    )


def _add_file(digest, path: Path) -> None:
    with Path(path).open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)


def folder_hash(folder: Path, skip: tuple[str, ...] = ("README.md",)) -> str:
    """A hash of every file in a folder (names and bytes), e.g. a LoRA adapter: a retrained adapter is a new model."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name not in skip):
        digest.update(str(path.relative_to(folder)).encode())
        _add_file(digest, path)
    return digest.hexdigest()[:16]


def file_hash(path: Path) -> str:
    """A hash of one file's bytes, e.g. an exported GGUF."""
    digest = hashlib.sha256()
    _add_file(digest, path)
    return digest.hexdigest()[:16]


class PredictionCache:
    """key -> JSON value. Thread-safe; several processes may share the file (SQLite WAL)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / CACHE_FILE
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=60.0, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM predictions WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, key: str, model: str, item_id: str, value: Mapping[str, Any]) -> None:
        data = json.dumps(dict(value), ensure_ascii=False, default=str)
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO predictions (key, model, item_id, value, created_at) VALUES (?, ?, ?, ?, ?)",
                (key, model, item_id, data, stamp),
            )

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> PredictionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
