"""The LLM judge: a rubric prompt (templates/judge.md) and a robust reader of its CORRECT / INCORRECT grade.

The judge sees the question, the reference answer (with its final answer on its own line) and the candidate's
whole reply; not the AIS context (the reference carries the value, and long contexts would multiply the cost).
A grade that cannot be read is recorded as `unparseable` and counted as incorrect; a call that failed (HTTP
error, timeout, budget) leaves the prediction unjudged and is counted separately.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Literal

from maritime_slm.config import ModelEndpoint
from maritime_slm.evaluate.cache import PredictionCache, prediction_key
from maritime_slm.evaluate.items import EvalItem
from maritime_slm.evaluate.predict import Prediction, llm_identity
from maritime_slm.llm import LLMRequest, run_batch, serving
from maritime_slm.llm.failures import FailureWatch
from maritime_slm.llm.session import LLMSession

Grade = Literal["CORRECT", "INCORRECT"]
CANDIDATE_CHARS = 4000
"""Longest candidate reply shown to the judge (longer ones are cut, with a note)."""

_MARKUP = re.compile(r"[*_`#>\[\]{}\"'“”‘’]")
# one verdict mention; negative forms first so "not correct" is not read as "correct"
_MENTION = re.compile(
    r"\b(?P<neg>incorrect|wrong|not\s+(?:\w+\s+){0,2}correct|isn\s?t\s+(?:\w+\s+)?correct|"
    r"(?:partially|partly|only\s+partially)\s+correct)\b"
    r"|\b(?P<pos>correct)\b(?!\s+(?:answer|value|final|one|result|response|mmsi|number|label|unit)\b)",
    re.IGNORECASE,
)
_LABEL = re.compile(
    r"\b(?:verdict|grade|grading|judg(?:e)?ment|decision|evaluation|assessment)\s*[:=\-]\s*", re.I
)


@lru_cache(maxsize=2)
def template_text(name: str = "judge") -> str:
    return (resources.files("maritime_slm.evaluate") / "templates" / f"{name}.md").read_text().strip()


def judge_messages(
    question: str, reference: str, reference_final: str, candidate: str
) -> list[dict[str, str]]:
    """The judge's chat: one user message rendered from templates/judge.md."""
    candidate = candidate.strip() or "(empty reply)"
    if len(candidate) > CANDIDATE_CHARS:
        candidate = candidate[:CANDIDATE_CHARS] + "\n[... reply cut for length]"
    user = Template(template_text("judge")).substitute(
        question=question.strip(),
        reference=reference.strip(),
        reference_final=reference_final.strip(),
        candidate=candidate,
    )
    return [{"role": "user", "content": user}]


def _polarity(match: re.Match[str]) -> Grade:
    return "INCORRECT" if match.group("neg") else "CORRECT"


def parse_grade(text: str | None) -> Grade | None:
    """CORRECT, INCORRECT or None (unreadable) from a judge's reply, tolerating markup, case and prose.

    In order: a labelled verdict ("Verdict: INCORRECT"; the last one wins); a verdict word opening the reply
    (the one word the prompt asks for); otherwise every verdict mention must agree. Negations ("not correct",
    "isn't correct", "partially correct", "wrong") are INCORRECT; "the correct answer is ..." is not a verdict.
    """
    if not text:
        return None
    clean = " ".join(_MARKUP.sub(" ", text).replace("’", "'").split())
    clean = clean.replace("'", " ")  # "isn't" -> "isn t"
    if not clean:
        return None
    mentions = list(_MENTION.finditer(clean))
    if not mentions:
        return None
    labelled = [m for lab in _LABEL.finditer(clean) if (m := _MENTION.match(clean, lab.end()))]
    if labelled:
        return _polarity(labelled[-1])
    lead = re.match(r"[\s.:;,!\-]*", clean)
    if mentions[0].start() == (lead.end() if lead else 0):
        return _polarity(mentions[0])
    polarities = {_polarity(m) for m in mentions}
    return polarities.pop() if len(polarities) == 1 else None


# ------------------------------------------------------------------------------------------------ running it
@dataclass
class JudgeGrade:
    """One graded prediction. status: ok | unparseable (counted incorrect) | failed:<kind> | not_answered."""

    grade: Grade | None
    status: str
    text: str | None = None
    cached: bool = False

    @property
    def judged_correct(self) -> bool | None:
        """True/False where the judge answered (unparseable = False); None where it was not asked or failed."""
        if self.status == "ok":
            return self.grade == "CORRECT"
        if self.status == "unparseable":
            return False
        return None


def judge_endpoint(endpoint: ModelEndpoint) -> ModelEndpoint:
    return endpoint.model_copy(update={"response_format": "text"})


def judge_plan(
    judge: ModelEndpoint,
    predictions: Sequence[Prediction],
    items: Mapping[str, EvalItem],
    cache: PredictionCache,
) -> tuple[list[JudgeGrade | None], list[tuple[int, str, list[dict[str, str]]]], list[LLMRequest]]:
    """Grades already known (not answered, or in the prediction cache), the (index, cache key, messages) still to
    grade and their requests: what `judge_predictions` sends and the cost preview counts."""
    judge = judge_endpoint(judge)
    identity = llm_identity(judge, judge.temperature)
    grades: list[JudgeGrade | None] = [None] * len(predictions)
    todo: list[tuple[int, str, list[dict[str, str]]]] = []
    for i, p in enumerate(predictions):
        if not p.answered:
            grades[i] = JudgeGrade(None, "not_answered")
            continue
        it = items[p.item_id]
        messages = judge_messages(it.question, it.reference, it.final_answer, p.reply or "")
        digest = hashlib.sha256(json.dumps(messages, ensure_ascii=False).encode()).hexdigest()[:16]
        key = prediction_key(identity, f"{p.model}|{p.item_id}", digest, judge.max_tokens)
        if (hit := cache.get(key)) is not None:
            grade = parse_grade(hit["text"])
            grades[i] = JudgeGrade(grade, "ok" if grade else "unparseable", hit["text"], cached=True)
        else:
            todo.append((i, key, messages))
    requests = [LLMRequest(messages=m, tag=items[predictions[i].item_id].category) for i, _, m in todo]
    return grades, todo, requests


def judge_predictions(
    judge: ModelEndpoint,
    predictions: Sequence[Prediction],
    items: Mapping[str, EvalItem],
    cache: PredictionCache,
    llm: LLMSession,
) -> tuple[list[JudgeGrade], str]:
    """Grade every answered prediction with the judge (grades cached like predictions); a summary line."""
    judge = judge_endpoint(judge)
    grades, todo, requests = judge_plan(judge, predictions, items, cache)
    n_cached = len(predictions) - len(todo)
    summary = f"judge {judge.name}: {n_cached} grades from the prediction cache"
    if todo:
        with serving([judge]) as ready:
            batch = FailureWatch(ready[0], "judge", len(requests)).run(
                run_batch, ready[0], requests, cache=llm.request_cache, ledger=llm.ledger, budget=llm.budget,
                progress=llm.progress, desc=f"judge {judge.name}",
            )  # fmt: skip
        for (i, key, _), result in zip(todo, batch, strict=True):
            p = predictions[i]
            if result.ok:
                text = str(result.value)
                grade = parse_grade(text)
                grades[i] = JudgeGrade(grade, "ok" if grade else "unparseable", text)
                cache.put(key, f"judge:{judge.name}", f"{p.model}|{p.item_id}", {"text": text})
            else:
                grades[i] = JudgeGrade(None, f"failed:{result.failure}", result.text)
        summary += f"; {batch.summary()}"
    done = [g for g in grades if g is not None]
    unparseable = sum(g.status == "unparseable" for g in done)
    summary += f"; {unparseable} unparseable grades (counted incorrect)"
    return done, summary
