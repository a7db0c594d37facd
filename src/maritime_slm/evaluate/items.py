"""The test items every model answers, read from the curate stage's `dataset/test.jsonl`.

The prompt is the row's own `messages` without the assistant turn: exactly what the student was trained on
(system = `STUDENT_SYSTEM_PROMPT`, user = context + "Question: ..."). The reference is that assistant turn.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maritime_slm.answers import parse_final_answer
from maritime_slm.finetune.data import dataset_dir, read_split


@dataclass(frozen=True)
class EvalItem:
    id: str
    context_id: str
    category: str
    source_teacher: str
    question: str
    final_answer: str
    facts_ref: tuple[str, ...]
    prompt: tuple[dict[str, str], ...]
    reference: str
    phrasing: str | None = None

    @property
    def family(self) -> str | None:
        """The kind of question (the fact key before any ':'), e.g. 'vessel_profile.flag'."""
        return self.fact_key.split(":", 1)[0] if self.fact_key else None

    @property
    def messages(self) -> list[dict[str, str]]:
        return [dict(m) for m in self.prompt]

    @property
    def prompt_hash(self) -> str:
        text = json.dumps(list(self.prompt), sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]

    @property
    def fact_key(self) -> str | None:
        return self.facts_ref[0].strip() if self.facts_ref else None


def item_from_row(row: dict[str, Any]) -> EvalItem:
    messages = row["messages"]
    prompt = messages[:-1] if messages[-1]["role"] == "assistant" else messages
    reference = messages[-1]["content"] if messages[-1]["role"] == "assistant" else ""
    final = row.get("final_answer") or parse_final_answer(reference) or ""
    question = row.get("question") or prompt[-1]["content"].rsplit("Question: ", 1)[-1]
    return EvalItem(
        id=str(row["id"]),
        context_id=str(row.get("context_id", "")),
        category=str(row.get("category") or "unknown"),
        source_teacher=str(row.get("teacher") or ""),
        question=question,
        final_answer=str(final),
        facts_ref=tuple(row.get("facts_ref") or ()),
        prompt=tuple({"role": m["role"], "content": m["content"]} for m in prompt),
        reference=reference,
        phrasing=row.get("phrasing"),
    )


def spread_over_categories(items: list[EvalItem], max_items: int | None) -> list[EvalItem]:
    """The first `max_items` items taken round-robin over categories (in file order within each): a capped run
    still covers every category. None keeps all items in file order."""
    if max_items is None or max_items >= len(items):
        return list(items)
    by_cat: dict[str, list[EvalItem]] = defaultdict(list)
    for item in items:
        by_cat[item.category].append(item)
    chosen: list[EvalItem] = []
    queues = [by_cat[c] for c in sorted(by_cat)]
    depth = 0
    while len(chosen) < max_items:
        for queue in queues:
            if depth < len(queue) and len(chosen) < max_items:
                chosen.append(queue[depth])
        depth += 1
    keep = {i.id for i in chosen}
    return [i for i in items if i.id in keep]


def load_items(curate_dir: Path, max_items: int | None = None) -> list[EvalItem]:
    """The test split as EvalItems (at most `max_items`, spread over categories)."""
    rows = read_split(dataset_dir(Path(curate_dir)) / "test.jsonl")
    items = [item_from_row(r) for r in rows]
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ValueError(f"duplicate test item id {item.id!r} in {curate_dir}")
        seen.add(item.id)
    return spread_over_categories(items, max_items)
