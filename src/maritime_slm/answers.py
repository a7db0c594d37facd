"""The answer format every model is asked for and graded on: reasoning, then a last line "Final answer: VALUE".

Shared by the training data (curate), the students' and teachers' replies (evaluate) and the emulated API models of
a dry run, so it lives below all of them.
"""

from __future__ import annotations

import re

FINAL_ANSWER_PREFIX = "Final answer: "
_FINAL_RE = re.compile(r"final answer\s*[:\-]\s*(.+)", re.IGNORECASE)


def assistant_content(reasoning: str, final_answer: str) -> str:
    reasoning = reasoning.strip()
    return (
        f"{reasoning}\n{FINAL_ANSWER_PREFIX}{final_answer}"
        if reasoning
        else f"{FINAL_ANSWER_PREFIX}{final_answer}"
    )


def parse_final_answer(reply: str) -> str | None:
    """The text after the last "Final answer:" in a reply (first line of it), or None if there is none."""
    matches = list(_FINAL_RE.finditer(reply or ""))
    if not matches:
        return None
    lines = matches[-1].group(1).strip().splitlines()
    return (lines[0].strip() or None) if lines else None
