"""Revise (the R of ARF): an editor model rewrites each wrong pair, told what is wrong and shown the facts.

Only `incorrect` pairs whose fact exists are sent to the editor (an `unverifiable` pair has no fact to revise
towards). The editor sees the context, the pair, the diagnosed error with the verifier's detail and the relevant
facts (the referenced one first, then facts about the same vessel or place), and returns an `EditorRevision`.
The revision is verified like any pair and kept only if it is `correct`; every attempt is logged
(`revisions.jsonl`: id, error_type, detail, before, after, kept, ...). A kept revision is a new pair with id
`<original id>-rev` and `revised_from` = the original id; the original stays out of the dataset.

Calls go through `maritime_slm.llm` exactly like generation: the shared `RequestCache` (`<llm_dir>/cache.sqlite`),
`Ledger(<llm_dir>/curate)`, a `Budget` with the editor's own line (`curate.editor.budget_usd`), and `serving()` for
a local editor; the cost preview is printed and recorded (`cost_preview.json`) before the first paid request.
Tests inject an `EditorFn` instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from maritime_slm.config import ModelEndpoint, Params
from maritime_slm.curate.verify import ERROR_DESCRIPTIONS, verify
from maritime_slm.facts.factsheet import final_answer_text
from maritime_slm.generate.records import QAPair
from maritime_slm.llm import Budget, Ledger, LLMRequest, RequestCache, run_batch, serving
from maritime_slm.llm.failures import FailureWatch
from maritime_slm.llm.preview import CostPreview, announce, measured_output, preview_role
from maritime_slm.llm.session import llm_session

EDITOR_CONTEXT_CHARS = 12_000
"""Longest context text shown to the editor (longer ones are cut, with a note; the facts carry the values)."""
MAX_RELATED_FACTS = 4
REVISED_SUFFIX = "-rev"


class EditorRevision(BaseModel):
    """What the editor returns: the revised pair and a one-line note on what changed."""

    model_config = ConfigDict(extra="ignore")

    question: str = Field(min_length=5)
    reasoning: str
    answer: str
    final_answer: str = Field(min_length=1)
    change: str = Field(description="what was changed and why, in one sentence")


@dataclass(frozen=True)
class EditJob:
    """One pair to revise, with everything the editor prompt is made from."""

    pair: QAPair
    fact: dict[str, Any]
    related: list[dict[str, Any]]
    context_text: str

    @property
    def messages(self) -> list[dict[str, str]]:
        return editor_messages(self)


EditorFn = Callable[[Sequence[EditJob]], list["EditorRevision | str"]]
"""Revisions for jobs, in order; a string in place of a revision is the reason the editor gave none."""


@lru_cache(maxsize=4)
def template_text(name: str) -> str:
    return (resources.files("maritime_slm.curate") / "templates" / f"{name}.md").read_text().strip()


def _subject_args(key: str) -> set[str]:
    return set(key.split(":")[1:])


def relevant_facts(fact: Mapping[str, Any], sheet: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Facts about the same vessel(s) or place as the referenced fact (same key arguments, or its `support`
    names them), at most MAX_RELATED_FACTS, category-mates first."""
    args = _subject_args(fact["key"]) | {str(fact.get("subject"))} - {"None"}
    support = fact.get("support") or {}
    for name in ("mmsi", "pair"):
        value = support.get(name)
        args |= {str(v) for v in value} if isinstance(value, list) else ({str(value)} if value else set())
    related = [
        dict(f)
        for f in sheet
        if f["key"] != fact["key"] and args & (_subject_args(f["key"]) | {str(f.get("subject"))})
    ]
    related.sort(key=lambda f: (f["category"] != fact["category"], f["key"]))
    return related[:MAX_RELATED_FACTS]


def render_fact(fact: Mapping[str, Any]) -> str:
    line = f"- {fact['key']}: {fact['label']} = {final_answer_text(dict(fact))}"
    if fact["kind"] == "number":
        line += f" (accepted within ± {fact['tolerance']:g} {fact['unit']})"
    support = {k: v for k, v in (fact.get("support") or {}).items() if v not in (None, [], {})}
    if support:
        line += f"; computed from: {json.dumps(support, default=str)[:600]}"
    return line


def final_form(fact: Mapping[str, Any]) -> str:
    example = final_answer_text(dict(fact))
    kind = fact["kind"]
    what = {
        "number": f"a number with its unit ({fact.get('unit')})",
        "count": "a whole number",
        "mmsi": "one 9-digit MMSI",
        "pair": 'two MMSIs joined by "and"',
        "label": "a label",
        "name": "a name",
    }.get(kind, "a short value")
    return f'{what}, like "{example}"'


def editor_messages(job: EditJob) -> list[dict[str, str]]:
    p, v = job.pair, job.pair.verification
    error_type = v.error_type if v and v.error_type else "unknown"
    text = job.context_text
    if len(text) > EDITOR_CONTEXT_CHARS:
        text = (
            text[:EDITOR_CONTEXT_CHARS] + "\n[... snapshot cut for length; the facts below hold the values]"
        )
    user = Template(template_text("editor")).substitute(
        context=text,
        question=p.question,
        reasoning=p.reasoning or "(none)",
        answer=p.answer or "(none)",
        final_answer=p.final_answer or "(empty)",
        error_type=error_type,
        error_meaning=ERROR_DESCRIPTIONS.get(error_type, "see the detail"),
        detail=v.detail if v else "",
        facts="\n".join(render_fact(f) for f in [job.fact, *job.related]),
        fact_label=job.fact["label"],
        final_form=final_form(job.fact),
    )
    return [{"role": "system", "content": template_text("editor_system")}, {"role": "user", "content": user}]


def revisable(p: QAPair) -> bool:
    return p.verification is not None and p.verification.status == "incorrect"


def edit_jobs(
    pairs: Sequence[QAPair],
    facts: Mapping[str, list[dict[str, Any]]],
    contexts: Mapping[str, Mapping[str, Any]],
) -> list[EditJob]:
    jobs = []
    for p in pairs:
        if not revisable(p) or p.context_id not in facts or p.context_id not in contexts:
            continue
        sheet = facts[p.context_id]
        fact = next((f for f in sheet if p.facts_ref and f["key"] == p.facts_ref[0].strip()), None)
        if fact is None:
            continue
        jobs.append(EditJob(p, dict(fact), relevant_facts(fact, sheet), str(contexts[p.context_id]["text"])))
    return jobs


def editor_requests(jobs: Sequence[EditJob]) -> list[LLMRequest]:
    return [LLMRequest(messages=j.messages, output=EditorRevision, tag=j.pair.category) for j in jobs]


def llm_editor(
    endpoint: ModelEndpoint,
    *,
    cache: RequestCache | None,
    ledger: Ledger | None,
    budget: Budget | None,
    progress: bool = True,
) -> EditorFn:
    """An EditorFn over `run_batch` (the endpoint must have its base_url: use `serving` for a local one)."""

    def edit(jobs: Sequence[EditJob]) -> list[EditorRevision | str]:
        requests = editor_requests(jobs)
        batch = FailureWatch(endpoint, "editor", len(requests)).run(
            run_batch, endpoint, requests, cache=cache, ledger=ledger, budget=budget, progress=progress,
            desc=f"editor {endpoint.name}",
        )  # fmt: skip
        return [r.value if r.ok else f"{r.failure}: {r.detail[:200]}" for r in batch]

    return edit


@dataclass
class RevisionResult:
    kept: list[QAPair] = field(default_factory=list)
    log: list[dict[str, Any]] = field(default_factory=list)
    skipped_reason: str | None = None
    summary: str = ""

    @property
    def attempted(self) -> int:
        return sum(1 for r in self.log if r["attempted"])

    @property
    def n_kept(self) -> int:
        return len(self.kept)


def _fields(p: QAPair) -> dict[str, str]:
    return {
        "question": p.question,
        "reasoning": p.reasoning,
        "answer": p.answer,
        "final_answer": p.final_answer,
    }


def revise_pairs(
    pairs: Sequence[QAPair],
    facts: Mapping[str, list[dict[str, Any]]],
    contexts: Mapping[str, Mapping[str, Any]],
    editor: EditorFn,
    max_revisions: int | None = None,
) -> RevisionResult:
    """Send the revisable pairs (the first `max_revisions`) to the editor, re-verify each, keep the correct ones."""
    jobs = edit_jobs(pairs, facts, contexts)[:max_revisions]
    result = RevisionResult()
    if not jobs:
        return result
    outputs = editor(jobs)
    if len(outputs) != len(jobs):
        raise ValueError(f"editor returned {len(outputs)} revisions for {len(jobs)} pairs")
    for job, out in zip(jobs, outputs, strict=True):
        p, v = job.pair, job.pair.verification
        row: dict[str, Any] = {
            "id": p.id,
            "teacher": p.teacher,
            "category": p.category,
            "context_id": p.context_id,
            "fact_key": job.fact["key"],
            "error_type": v.error_type if v else None,
            "detail": v.detail if v else "",
            "before": _fields(p),
            "attempted": True,
        }
        if isinstance(out, str):
            row |= {"after": None, "kept": False, "revised_id": None, "after_status": None,
                    "after_error_type": None, "after_detail": "", "change": None, "failure": out}  # fmt: skip
            result.log.append(row)
            continue
        revised = p.model_copy(
            update={
                "id": f"{p.id}{REVISED_SUFFIX}",
                "question": out.question.strip() or p.question,
                "reasoning": out.reasoning.strip(),
                "answer": out.answer.strip(),
                "final_answer": out.final_answer.strip(),
                "revised_from": p.id,
                "verification": None,
            }
        )
        check = verify(revised, facts[p.context_id], contexts[p.context_id])
        revised = revised.model_copy(update={"verification": check})
        kept = check.status == "correct"
        row |= {"after": _fields(revised), "kept": kept, "revised_id": revised.id, "after_status": check.status,
                "after_error_type": check.error_type, "after_detail": check.detail, "change": out.change,
                "failure": None}  # fmt: skip
        result.log.append(row)
        if kept:
            result.kept.append(revised)
    n = len(result.log)
    result.summary = (
        f"{result.n_kept}/{n} revisions kept ({sum(r['failure'] is not None for r in result.log)} failed)"
    )
    return result


def run_revision(
    pairs: Sequence[QAPair],
    facts: Mapping[str, list[dict[str, Any]]],
    contexts: Mapping[str, Mapping[str, Any]],
    params: Params,
    stage_dir: Path,
    llm_dir: Path,
    editor: EditorFn | None = None,
    progress: bool = True,
) -> RevisionResult:
    """The revise step of a run: the injected `editor`, or `params.curate.editor` through the llm package.

    The budget is `params.curate.budget_usd`, less what the editor already paid in this run folder (read from its
    call log, so a resumed run counts what it paid before), and the editor's own line `curate.editor.budget_usd`
    within it. The cost preview of the revisions is printed and written to `stage_dir` first; the stage refuses
    to start when it does not fit (`curate.refuse_over_budget`). The editor's `ledger.csv` and `calls.jsonl` are
    copied into the stage.
    """
    if editor is not None:
        return revise_pairs(pairs, facts, contexts, editor, params.curate.max_revisions)
    endpoint = params.curate.editor
    if not params.curate.revise:
        return RevisionResult(skipped_reason="curate.revise is false")
    if endpoint is None:
        return RevisionResult(skipped_reason="no editor model in params (curate.editor)")
    jobs = edit_jobs(pairs, facts, contexts)[: params.curate.max_revisions]
    if not jobs:
        return RevisionResult(skipped_reason="no pair to revise")
    with llm_session(llm_dir, "curate", params.curate.budget_usd, progress) as session:
        cache, ledger, budget = session.request_cache, session.ledger, session.budget
        spent = session.spent_by().get(endpoint.name, 0.0)
        preview = CostPreview(
            "curate (revision)",
            [preview_role("editor", endpoint, editor_requests(jobs), request_cache=cache,
                          line_key="curate.editor.budget_usd", line_usd=endpoint.budget_usd, line_spent_usd=spent,
                          expected_output=measured_output(ledger.log_path, endpoint.name))],
            "curate.budget_usd", params.curate.budget_usd, ledger.total_usd(),
        )  # fmt: skip
        announce(preview, stage_dir, params.curate.refuse_over_budget, "curate.refuse_over_budget")
        line = budget.line(None if endpoint.local else endpoint.budget_usd, spent_usd=spent)
        with serving([endpoint]) as ready:
            editor_fn = llm_editor(ready[0], cache=cache, ledger=ledger, budget=line, progress=progress)
            result = revise_pairs(pairs, facts, contexts, editor_fn, params.curate.max_revisions)
        session.publish(stage_dir)
    return result
