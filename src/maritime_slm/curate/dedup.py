"""Dedup: drop pairs that repeat another pair *about the same snapshot*; report (not drop) template repeats.

What a duplicate is here: a training example is (context, question, answer). Two contexts asking "How many
vessels are in this snapshot?" are different examples (the model must count different tables), so the question
text alone never makes a duplicate across contexts. Dropped, in this order:
- `exact_same_context`: the same normalised question about the same snapshot.
- `near_same_context`: the same snapshot, the same fact key, the same entities (MMSIs, numbers, proper names)
  in the question, and question wording with a character-3-gram Jaccard similarity >= `threshold`
  (params `curate.near_dup_threshold`). Requiring the same fact key and entities keeps "How many vessels are
  moving?" apart from "... not moving?" and "MMSI 367000001" apart from "MMSI 367000002".
"The same snapshot" is the same context_id, or another context whose text is identical (the same window and
cell sampled twice): across contexts, a pair is a duplicate only when the snapshot itself repeats with the
question (verified answers to one question about one snapshot then agree; `same_answer` in the log says so).
Reported only (`template_repeats_kept`): a question with the same final answer in another, different context
(a template repeat; it stays, since the contexts differ).

Which pair of a duplicate group stays: an original LLM-teacher pair before a rules-teacher pair (richer
wording, and rarer), an original before a revision, then the smaller id (deterministic).
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from maritime_slm.curate.verify import normalize_text
from maritime_slm.generate.records import QAPair

RULES_TEACHER = "rules"
_SENTENCE_START = re.compile(r"(?:^|[.?!]\s+)([A-Z][\w-]*)")
_ACRONYMS = {"mmsi", "utc", "sog", "cog", "ais", "eta", "cpa", "tcpa", "colregs", "imo", "class", "nm", "kn"}


def normalize_question(question: str) -> str:
    return normalize_text(question)


def shingles(text: str, k: int = 3) -> set[str]:
    t = f" {normalize_text(text)} "
    return {t[i : i + k] for i in range(max(1, len(t) - k + 1))}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def entities(question: str) -> frozenset[str]:
    """Tokens that name *what* is asked about: numbers (MMSIs, times, radii) and capitalised words that do not
    start a sentence (ports, zones, vessel names), lower-cased; common acronyms are not entities."""
    starts = {m.start(1) for m in _SENTENCE_START.finditer(question)}
    out = set(re.findall(r"\d+(?:\.\d+)?", question))
    for m in re.finditer(r"\b[A-Z][\w-]*", question):
        word = m.group(0).lower()
        if m.start() not in starts and word not in _ACRONYMS:
            out.add(word)
    return frozenset(out)


def content_key(context: Mapping[str, Any] | None, context_id: str) -> str:
    """Contexts with identical text are one snapshot for dedup."""
    if context is None or not context.get("text"):
        return f"id:{context_id}"
    return "text:" + hashlib.sha1(str(context["text"]).encode()).hexdigest()


def keep_priority(p: QAPair) -> tuple[int, int, str]:
    return (p.teacher == RULES_TEACHER, p.revised_from is not None, p.id)


@dataclass
class DedupResult:
    kept: list[QAPair]
    dropped: list[dict[str, Any]] = field(default_factory=list)
    same_qa_across_contexts: int = 0

    @property
    def by_reason(self) -> dict[str, int]:
        return dict(Counter(d["reason"] for d in self.dropped))

    def summary(self) -> dict[str, Any]:
        return {
            "kept": len(self.kept),
            "dropped": len(self.dropped),
            "by_reason": self.by_reason,
            "template_repeats_kept": self.same_qa_across_contexts,
        }


def dedup_pairs(
    pairs: Sequence[QAPair],
    contexts: Mapping[str, Mapping[str, Any]] | None = None,
    threshold: float = 0.9,
) -> DedupResult:
    """Drop exact and near duplicates within a snapshot; `kept` keeps the input order."""
    contexts = contexts or {}
    groups: dict[str, list[QAPair]] = defaultdict(list)
    for p in pairs:
        groups[content_key(contexts.get(p.context_id), p.context_id)].append(p)
    dropped: dict[str, dict[str, Any]] = {}
    for members in groups.values():
        members = sorted(members, key=keep_priority)
        survivors: list[tuple[QAPair, str, set[str], frozenset[str]]] = []
        for p in members:
            norm = normalize_question(p.question)
            grams, ents = shingles(p.question), entities(p.question)
            key = p.facts_ref[0] if p.facts_ref else ""
            for q, q_norm, q_grams, q_ents in survivors:
                if norm == q_norm:
                    same_answer = normalize_text(p.final_answer) == normalize_text(q.final_answer)
                    dropped[p.id] = {"id": p.id, "kept_id": q.id, "reason": "exact_same_context", "similarity": 1.0,
                                     "context_id": p.context_id, "same_answer": same_answer}  # fmt: skip
                    break
                q_key = q.facts_ref[0] if q.facts_ref else ""
                if key == q_key and ents == q_ents:
                    sim = jaccard(grams, q_grams)
                    if sim >= threshold:
                        dropped[p.id] = {"id": p.id, "kept_id": q.id, "reason": "near_same_context",
                                         "similarity": round(sim, 4), "context_id": p.context_id,
                                         "same_answer": True}  # fmt: skip
                        break
            else:
                survivors.append((p, norm, grams, ents))
    kept = [p for p in pairs if p.id not in dropped]
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for p in kept:
        seen[(normalize_question(p.question), normalize_text(p.final_answer))].add(p.context_id)
    repeats = sum(len(cids) - 1 for cids in seen.values())
    return DedupResult(kept=kept, dropped=list(dropped.values()), same_qa_across_contexts=repeats)
