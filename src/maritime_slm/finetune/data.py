"""The curate stage's training files, read and checked: `<curate_dir>/dataset/{train,val,test}.jsonl`.

Each line holds `messages` (system, user = context + question, assistant = reasoning + final answer) plus metadata.
Examples longer than `max_length` tokens are left out (with a count) rather than truncated: truncation would cut
the answer, which sits at the end, and leave nothing to learn from.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from maritime_slm.curate.export import QUESTION_PREFIX

SPLITS = ("train", "val", "test")
ROLES = {"system", "user", "assistant"}


class DatasetError(ValueError):
    """A training file is missing or malformed; the message names the file and line."""


def dataset_dir(curate_dir: Path) -> Path:
    return Path(curate_dir) / "dataset"


def _check_messages(messages: Any, where: str) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise DatasetError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise DatasetError(
                f"{where}: messages[{i}] must be {{'role': system|user|assistant, 'content': str}}, got {m!r:.120}"
            )
    if messages[-1]["role"] != "assistant":
        raise DatasetError(f"{where}: the last message must be the assistant's answer")
    if not any(m["role"] == "user" for m in messages):
        raise DatasetError(f"{where}: no user message")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def read_split(path: Path) -> list[dict[str, Any]]:
    """One JSONL split; every row keeps its metadata and gets validated `messages`."""
    if not path.is_file():
        raise DatasetError(f"missing training file {path}: run the curate stage first")
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{n}: not valid JSON ({exc})") from None
            if not isinstance(row, dict):
                raise DatasetError(f"{path}:{n}: expected a JSON object")
            row["messages"] = _check_messages(row.get("messages"), f"{path}:{n}")
            rows.append(row)
    return rows


def file_sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else "missing"


@dataclass
class Encoded:
    """Token ids and loss labels of the examples that fit `max_length`."""

    input_ids: list[list[int]] = field(default_factory=list)
    labels: list[list[int]] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)
    dropped_too_long: int = 0
    dropped_no_answer: int = 0

    @property
    def n_tokens(self) -> int:
        return sum(len(ids) for ids in self.input_ids)

    @property
    def n_answer_tokens(self) -> int:
        return sum(sum(1 for lab in labels if lab != -100) for labels in self.labels)


def follow_up_question(row: dict[str, Any]) -> str:
    """A later turn of a conversation about the same context: the question alone (the context is already above)."""
    question = row.get("question") or row["messages"][-2]["content"].rsplit(QUESTION_PREFIX, 1)[-1]
    return f"{QUESTION_PREFIX.lstrip()}{question}"


def pack_by_context(
    tokenizer, rows: list[dict[str, Any]], max_turns: int, max_length: int, seed: int
) -> list[dict[str, Any]]:
    """Questions about the same context as turns of one conversation: the context is read once and every answer
    is supervised, so a training step spends its tokens on answers rather than on re-reading snapshots.

    The first turn is exactly a single-question row (system, context + question, answer: what the student is
    asked at test time); later turns carry only `Question: ...` and the answer. Turns are shuffled per context
    (seeded) and added while the conversation fits `max_length` tokens and `max_turns`. `max_turns` 1 keeps
    one question per example.
    """
    from maritime_slm.finetune.chat import encode_for_training

    if max_turns <= 1:
        return rows
    by_context: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_context.setdefault(str(row.get("context_id", row.get("id"))), []).append(row)
    rng = random.Random(seed)
    packed = []
    for cid, group in by_context.items():
        group = list(group)
        rng.shuffle(group)
        while group:
            first = group.pop(0)
            messages, ids = list(first["messages"]), [first.get("id")]
            while group and len(ids) < max_turns:
                turn = [
                    {"role": "user", "content": follow_up_question(group[0])},
                    group[0]["messages"][-1],
                ]
                if len(encode_for_training(tokenizer, messages + turn)[0]) > max_length:
                    break
                messages += turn
                ids.append(group.pop(0).get("id"))
            packed.append(
                {"id": "+".join(map(str, ids)), "context_id": cid, "messages": messages, "turns": len(ids)}
            )
    return packed


def encode_rows(tokenizer, rows: list[dict[str, Any]], max_length: int) -> Encoded:
    from maritime_slm.finetune.chat import encode_for_training

    out = Encoded()
    for row in rows:
        ids, labels = encode_for_training(tokenizer, row["messages"])
        if len(ids) > max_length:
            out.dropped_too_long += 1
            continue
        if all(lab == -100 for lab in labels):
            out.dropped_no_answer += 1
            continue
        out.input_ids.append(ids)
        out.labels.append(labels)
        out.rows.append(row)
    return out
