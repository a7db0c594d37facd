"""JSON Lines, the format every stage hands forward (contexts, facts, pairs, predictions)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with Path(path).open() as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: list[Any]) -> int:
    """One JSON object per line; pydantic models are dumped in JSON mode. Returns the number of rows."""
    with Path(path).open("w") as fh:
        for row in rows:
            data = row.model_dump(mode="json") if hasattr(row, "model_dump") else row
            fh.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")
    return len(rows)
