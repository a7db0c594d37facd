"""What a profile's model calls cost on a year of AIS, before any of it runs: `python -m maritime_slm cost-preview`.

Nothing here is a guess about prompt sizes: every prompt is rendered by the stage code that will send it (teacher,
editor, student/teacher-answer and judge prompts) on contexts built from the shipped AIS sample with the profile's
context params, and counted with the model's own tokenizer (`llm/tokens.py`). What the sample cannot give is
scaled, with the arithmetic printed:

- context size: the sample's contexts hold fewer vessels than a year's busiest cells. Each request is counted with
  its sample context swapped for one of the profile's size: the snapshot's tokens per vessel (measured on the
  sample) times the vessels a context can hold (`contexts.vessels_per_context`, or fewer where the student's
  `contexts.token_budget` cuts it, in the student's tokens, measured on the same sample);
- request counts: `contexts.n_contexts` x `generate.pairs_per_context` per teacher; the editor at its ceiling, every
  teacher pair revised once (`curate.max_revisions` caps it); the test split (`curate.split.test`) of the teacher
  pairs answered by each teacher (`evaluate.llm_max_items` caps it) and graded by the judge for every model
  (base and tuned student, each teacher, the oracle and the train prior), each reply at its ceiling length.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maritime_slm.config import Params
from maritime_slm.curate.export import record
from maritime_slm.curate.revise import EDITOR_CONTEXT_CHARS, EditJob, editor_requests, relevant_facts
from maritime_slm.evaluate.items import item_from_row
from maritime_slm.evaluate.judge import CANDIDATE_CHARS, judge_endpoint, judge_messages
from maritime_slm.evaluate.predict import answer_endpoint, teacher_max_tokens
from maritime_slm.facts.build import read_flags, read_points
from maritime_slm.facts.contexts import sample_contexts
from maritime_slm.facts.factsheet import compute_facts
from maritime_slm.generate.records import Verification
from maritime_slm.generate.rules import rules_pairs
from maritime_slm.generate.run import teacher_requests
from maritime_slm.ingest.files import run_ingest
from maritime_slm.llm import LLMRequest
from maritime_slm.llm.client import first_request
from maritime_slm.llm.preview import CostPreview, RolePreview, preview_role
from maritime_slm.llm.tokens import tokenizer_for
from maritime_slm.models import student_token_counter

SAMPLE_INPUT = "data/sample/AIS_2022_01_03_first99999.zip"
JUDGED_MODELS = ("base student", "tuned student", "oracle", "train prior")
"""Models graded besides the teachers (evaluate judges every model's answers on the LLM items)."""


@dataclass
class ContextScale:
    """How a sample context's snapshot is resized to the profile's: tokens per vessel, measured on the sample."""

    sample_contexts: int
    sample_vessels: float
    o200k_per_vessel: float
    student_per_vessel: float
    target_vessels: int
    reason: str

    def o200k_tokens(self, ctx: dict[str, Any], counted: int) -> float:
        """A snapshot of `counted` o200k tokens and its vessels, resized to `target_vessels`."""
        return counted + (self.target_vessels - len(ctx["vessels"])) * self.o200k_per_vessel

    def arithmetic(self) -> str:
        return (
            f"context size: {self.sample_contexts} sample contexts, {self.sample_vessels:.1f} vessels each on "
            f"average, {self.o200k_per_vessel:.1f} o200k tokens ({self.student_per_vessel:.1f} student tokens) "
            f"per vessel; a year's context holds {self.target_vessels} vessels ({self.reason}), so each request "
            f"gets {self.target_vessels} - its sample context's vessels x {self.o200k_per_vessel:.1f} tokens"
        )


def sample_contexts_for(params: Params, n: int, work_dir: Path) -> tuple[list[dict], dict[str, list[dict]]]:
    """Contexts and facts from the shipped AIS sample, with the profile's context params (n of them at most)."""
    sample = params.model_copy(deep=True)
    sample.ingest.inputs = [SAMPLE_INPUT]
    sample.ingest.simulate = None
    sample.contexts.n_contexts = n
    run_ingest(sample, work_dir / "ingest", progress=False, paper=False)
    contexts, _, _ = sample_contexts(
        read_points(work_dir / "ingest"), read_flags(work_dir / "ingest"), sample.contexts, sample.facts,
        student_token_counter(sample.finetune), progress=False,
    )  # fmt: skip
    return contexts, {c["context_id"]: compute_facts(c, sample.facts) for c in contexts}


def context_scale(params: Params, contexts: list[dict], count_o200k) -> ContextScale:
    vessels = np.array([len(c["vessels"]) for c in contexts], dtype=float)
    o200k = np.array([count_o200k(c["text"]) for c in contexts], dtype=float)
    student = np.array([c["n_tokens"] for c in contexts], dtype=float)
    per_o200k, per_student = o200k.sum() / vessels.sum(), student.sum() / vessels.sum()
    wanted = params.contexts.vessels_per_context
    fits = int(params.contexts.token_budget / per_student)
    target, reason = (wanted, "contexts.vessels_per_context")
    if fits < wanted:
        target, reason = (
            fits,
            f"contexts.token_budget {params.contexts.token_budget} student tokens fit {fits}",
        )
    return ContextScale(len(contexts), float(vessels.mean()), per_o200k, per_student, target, reason)


def _scaled_role(
    role: str, endpoint, requests: list[LLMRequest], contexts: list[dict], scale: ContextScale,
    n_year: int, context_tokens, cut_chars: int | None = None,
) -> RolePreview:  # fmt: skip
    """A role's preview on the sample requests, each resized to a year context and scaled to `n_year` requests.

    `contexts[i]` is request i's context; `context_tokens(ctx)` its snapshot's tokens as that prompt shows it.
    """
    sample = preview_role(role, endpoint, requests)
    if endpoint.local or not requests:
        sample.requests = n_year
        return sample
    tokenizer = tokenizer_for(endpoint)
    grown = []
    for request, ctx in zip(requests, contexts, strict=True):
        body, _ = first_request(endpoint, request)
        counted = context_tokens(ctx)
        resized = scale.o200k_tokens(ctx, counted)
        if cut_chars is not None:  # the prompt cuts the snapshot: it never grows past the cut
            resized = min(resized, counted * cut_chars / max(1, min(len(ctx["text"]), cut_chars)))
        grown.append(len(tokenizer.prompt_tokens(body)) - counted + resized)
    factor = n_year / len(requests)
    per_request = float(np.mean(grown))
    share = sample.cached_input_tokens / sample.input_tokens if sample.input_tokens else 0.0
    sample.input_tokens = round(per_request * n_year)
    sample.cached_input_tokens = round(share * sample.input_tokens)
    sample.output_tokens_ceiling = round(sample.output_tokens_ceiling * factor)
    sample.requests = n_year
    sample.notes.append(
        f"{len(requests)} sample requests, {per_request:,.0f} input tokens each at year context size, "
        f"x {factor:,.1f} = {n_year:,} requests; cached prefix at the sample's share ({100 * share:.0f} %)"
    )
    sample.price(endpoint)
    return sample


def year_preview(params: Params, contexts: list[dict], facts: dict[str, list[dict]]) -> list[CostPreview]:
    """Generate, curate and evaluate previews for a year (`contexts.n_contexts`) from sample contexts."""
    by_id = {c["context_id"]: c for c in contexts}
    gen, cur, ev = params.generate, params.curate, params.evaluate
    paid = [e for e in [*gen.teachers, cur.editor, ev.judge] if e is not None and not e.local]
    count = tokenizer_for(paid[0]).count if paid else (lambda text: 0)  # snapshots in the API models' tokens
    scale = context_scale(params, contexts, count)
    snapshot = {c["context_id"]: count(c["text"]) for c in contexts}
    pairs_per_teacher = params.contexts.n_contexts * (gen.llm_pairs_per_context or gen.pairs_per_context)

    roles = []
    for teacher in gen.teachers:
        requests, keys = teacher_requests(contexts, facts, gen, teacher.name)
        owners = [by_id[cid] for cid, _ in keys]
        roles.append(_scaled_role("teacher", teacher, requests, owners, scale, pairs_per_teacher,
                                  lambda c: snapshot[c["context_id"]]))  # fmt: skip
    generate = CostPreview(
        "generate", roles, "generate.budget_usd", gen.budget_usd, scale_note=scale.arithmetic()
    )

    # rules pairs of the sample contexts stand in for the teachers' pairs: same contexts, same kind of question
    pairs = [p for c in contexts for p in rules_pairs(c["context_id"], facts[c["context_id"]], gen.categories,
                                                      gen.pairs_per_context, params.seed, 0.0)]  # fmt: skip
    n_pairs = pairs_per_teacher * len(gen.teachers)
    curate = CostPreview("curate (revision)", [], "curate.budget_usd", cur.budget_usd)
    if cur.editor is not None and cur.revise:
        jobs = []
        for p in pairs:
            sheet = facts[p.context_id]
            fact = next(f for f in sheet if f["key"] == p.facts_ref[0])
            wrong = p.model_copy(update={"verification": Verification(
                status="incorrect", error_type="wrong_value", detail=f"expected {p.final_answer}")})  # fmt: skip
            jobs.append(EditJob(wrong, dict(fact), relevant_facts(fact, sheet), by_id[p.context_id]["text"]))
        n_edit = min(n_pairs, cur.max_revisions or n_pairs)
        cut = {c["context_id"]: count(c["text"][:EDITOR_CONTEXT_CHARS]) for c in contexts}
        curate.roles.append(_scaled_role("editor", cur.editor, editor_requests(jobs),
                                         [by_id[j.pair.context_id] for j in jobs], scale, n_edit,
                                         lambda c: cut[c["context_id"]], cut_chars=EDITOR_CONTEXT_CHARS))  # fmt: skip
        curate.roles[-1].notes.append("ceiling: every teacher pair found incorrect and revised once")

    items = [item_from_row(record(p, by_id[p.context_id]["text"])) for p in pairs]
    n_items = round(n_pairs * cur.split.test)
    if ev.llm_max_items is not None:
        n_items = min(n_items, ev.llm_max_items)
    evaluate = CostPreview("evaluate (teacher answers, judge)", [], "evaluate.budget_usd", ev.budget_usd)
    owners = [by_id[it.context_id] for it in items]
    teachers = gen.teachers if ev.evaluate_teachers else []
    for teacher in teachers:
        answerer = answer_endpoint(teacher)
        max_tokens = teacher_max_tokens(answerer, ev.max_new_tokens)
        requests = [LLMRequest(messages=it.messages, tag=it.category, max_tokens=max_tokens, temperature=0.0)
                    for it in items]  # fmt: skip
        evaluate.roles.append(_scaled_role("answers", answerer, requests, owners, scale, n_items,
                                           lambda c: snapshot[c["context_id"]]))  # fmt: skip
    if ev.judge is not None:
        judge = judge_endpoint(ev.judge)
        ceilings = [ev.max_new_tokens] * len(JUDGED_MODELS) + [
            teacher_max_tokens(answer_endpoint(t), ev.max_new_tokens) for t in teachers
        ]
        requests = [
            LLMRequest(messages=judge_messages(it.question, it.reference, it.final_answer,
                                               " x" * min(ceiling, CANDIDATE_CHARS // 2)), tag=it.category)
            for it in items for ceiling in ceilings
        ]  # fmt: skip
        role = preview_role("judge", judge, requests)
        factor = n_items * len(ceilings) / max(1, len(requests))
        for column in ("input_tokens", "cached_input_tokens", "output_tokens_ceiling"):
            setattr(role, column, round(getattr(role, column) * factor))
        role.requests = n_items * len(ceilings)
        role.price(judge)
        role.notes.append(
            f"{len(ceilings)} models graded per item ({', '.join(JUDGED_MODELS)} and each teacher), each reply at "
            f"its ceiling (max tokens, cut at {CANDIDATE_CHARS} characters); the judge never sees the context"
        )
        evaluate.roles.append(role)
    counts = (
        f"requests: {params.contexts.n_contexts:,} contexts x {gen.llm_pairs_per_context or gen.pairs_per_context} "
        f"pairs = {pairs_per_teacher:,} per teacher; {n_pairs:,} teacher pairs, test share {cur.split.test:g} "
        f"-> {n_items:,} evaluated items"
    )
    curate.scale_note = evaluate.scale_note = counts
    generate.scale_note += "\n" + counts
    return [generate, curate, evaluate]


def run_year_preview(params: Params, n_sample: int = 40) -> list[CostPreview]:
    """Build sample contexts in a temporary folder and preview the year."""
    with tempfile.TemporaryDirectory(prefix="maritime-slm-cost-preview-") as tmp:
        contexts, facts = sample_contexts_for(params, n_sample, Path(tmp))
    if not contexts:
        raise ValueError("the AIS sample gave no context with these contexts params")
    return year_preview(params, contexts, facts)
