"""The multi-teacher run: the rules teacher plus every LLM teacher in params, through the shared cache/ledger/budget.

Each LLM request asks one teacher for one pair of one category about one context. Local teachers get a
llama.cpp server for the duration of their batch. A failed request is recorded (failures.jsonl and the ledger);
too many failures, or a fatal one, fail the stage (`llm.failures`); a budget stop ends a teacher cleanly. Each
teacher spends its own budget line (`budget_usd` of its endpoint) within the stage's `budget_usd`; every line is
held from the start, so the first teacher cannot spend the second's share. Before the first paid request the
stage prints and records its cost preview (`cost_preview.json`) and refuses to start when it does not fit.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from maritime_slm.config import GenerateParams, ModelEndpoint, Params
from maritime_slm.facts.build import build_contexts_and_facts, funnel_rows
from maritime_slm.generate.prompts import menu_facts, teacher_messages
from maritime_slm.generate.records import QAPair, TeacherOutput
from maritime_slm.generate.rules import rules_pairs
from maritime_slm.jsonl import write_jsonl
from maritime_slm.llm import Budget, Ledger, LLMRequest, RequestCache, run_batch, serving
from maritime_slm.llm.failures import FailureWatch
from maritime_slm.llm.preview import CostPreview, announce, measured_output, preview_role
from maritime_slm.llm.session import llm_session
from maritime_slm.report.tables import write_table
from maritime_slm.stage import Stage, StageRecord, StageResult


@dataclass
class GenerationResult:
    pairs: list[QAPair]
    failures: list[dict[str, Any]]
    summaries: dict[str, str] = field(default_factory=dict)
    stopped_by_budget: bool = False


def _categories_for(n_pairs: int, categories: list[str]) -> list[tuple[str, int]]:
    """(category, draw) for n_pairs requests, round-robin; `draw` separates repeated categories in the cache."""
    return [(categories[i % len(categories)], i // len(categories)) for i in range(n_pairs)]


def teacher_requests(
    contexts: list[dict[str, Any]],
    facts: dict[str, list[dict[str, Any]]],
    params: GenerateParams,
    teacher: str,
) -> tuple[list[LLMRequest], list[tuple[str, str]]]:
    requests, keys = [], []
    for ctx in contexts[: params.llm_max_contexts]:
        cid = ctx["context_id"]
        rng = random.Random(f"{cid}:{teacher}")
        for category, draw in _categories_for(
            params.llm_pairs_per_context or params.pairs_per_context, params.categories
        ):
            offered = menu_facts(facts[cid], category, rng)
            if not offered:
                continue
            messages = teacher_messages(ctx["text"], offered, category, params.prompt_mode)
            requests.append(LLMRequest(messages=messages, output=TeacherOutput, tag=category, sample=draw))
            keys.append((cid, category))
    return requests, keys


def _pair_id(teacher: str, context_id: str, category: str, index: int) -> str:
    digest = hashlib.sha1(f"{teacher}|{context_id}|{category}|{index}".encode()).hexdigest()[:12]
    return f"{teacher}-{digest}"


def run_teacher(
    endpoint: ModelEndpoint,
    requests: list[LLMRequest],
    keys: list[tuple[str, str]],
    cache: RequestCache,
    ledger: Ledger,
    budget: Budget,
) -> tuple[list[QAPair], list[dict[str, Any]], str, bool]:
    batch = FailureWatch(endpoint, "teacher", len(requests)).run(
        run_batch, endpoint, requests, cache=cache, ledger=ledger, budget=budget, desc=f"teacher {endpoint.name}"
    )  # fmt: skip
    pairs, failures = [], []
    for i, ((cid, category), result) in enumerate(zip(keys, batch, strict=True)):
        if result.ok:
            out: TeacherOutput = result.value
            pairs.append(
                QAPair(
                    id=_pair_id(endpoint.name, cid, category, i),
                    context_id=cid,
                    category=category,
                    teacher=endpoint.name,
                    question=out.question,
                    reasoning=out.reasoning,
                    answer=out.answer,
                    final_answer=out.final_answer,
                    facts_ref=[out.fact_key],
                )
            )
        else:
            failures.append(
                {
                    "teacher": endpoint.name,
                    "context_id": cid,
                    "category": category,
                    "failure": result.failure,
                    "detail": result.detail[:300],
                    "text": (result.text or "")[:500],
                }  # fmt: skip
            )
    return pairs, failures, batch.summary(), batch.stopped_by_budget


def generate_pairs(
    contexts: list[dict[str, Any]],
    facts: dict[str, list[dict[str, Any]]],
    params: GenerateParams,
    stage_dir: Path,
    llm_dir: Path,
    seed: int,
) -> GenerationResult:
    """Pairs from every teacher. The cache and the call log live in `llm_dir`, outside the stage folder, so a
    killed or failed stage resumes without paying twice; `ledger.csv` and `calls.jsonl` are copied into the stage.
    """
    pairs: list[QAPair] = []
    if params.rules_teacher:
        for ctx in contexts:
            cid = ctx["context_id"]
            pairs += rules_pairs(
                cid, facts[cid], params.categories, params.pairs_per_context, seed, params.paraphrase_share
            )
    result = GenerationResult(pairs=pairs, failures=[])
    stage_dir.mkdir(parents=True, exist_ok=True)
    if not params.teachers:
        return result
    with llm_session(llm_dir, "generate", params.budget_usd) as session:
        cache, ledger, budget = session.request_cache, session.ledger, session.budget
        spent = session.spent_by()
        planned = [teacher_requests(contexts, facts, params, t.name) for t in params.teachers]
        preview_generation(params, planned, cache, ledger, spent, stage_dir)
        # every line is made (and held) before the first teacher runs, so each keeps its share
        lines = [
            budget.line(None if t.local else t.budget_usd, spent_usd=spent.get(t.name, 0.0))
            for t in params.teachers
        ]
        with serving(params.teachers) as endpoints:
            for endpoint, (requests, keys), line in zip(endpoints, planned, lines, strict=True):
                new, failed, summary, stopped = run_teacher(endpoint, requests, keys, cache, ledger, line)
                result.pairs += new
                result.failures += failed
                result.summaries[endpoint.name] = summary
                result.stopped_by_budget |= stopped
        session.publish(stage_dir)
    return result


def preview_generation(
    params: GenerateParams,
    planned: list[tuple[list[LLMRequest], list[tuple[str, str]]]],
    cache: RequestCache | None,
    ledger: Ledger,
    spent: dict[str, float],
    stage_dir: Path,
) -> CostPreview:
    """The teachers' cost preview: printed, written to the stage folder, and refused when it does not fit."""
    roles = [
        preview_role(
            "teacher",
            teacher,
            requests,
            request_cache=cache,
            line_key=f"generate.teachers[{teacher.name}].budget_usd",
            line_usd=teacher.budget_usd,
            line_spent_usd=spent.get(teacher.name, 0.0),
            expected_output=measured_output(ledger.log_path, teacher.name),
        )  # fmt: skip
        for teacher, (requests, _) in zip(params.teachers, planned, strict=True)
    ]
    preview = CostPreview("generate", roles, "generate.budget_usd", params.budget_usd, ledger.total_usd())
    return announce(preview, stage_dir, params.refuse_over_budget, "generate.refuse_over_budget")


def pairs_frame(pairs: list[QAPair]) -> pl.DataFrame:
    return pl.DataFrame(
        [p.model_dump(mode="json", exclude={"verification", "revised_from", "split"}) for p in pairs],
        schema={"id": pl.String, "context_id": pl.String, "category": pl.String, "teacher": pl.String,
                "question": pl.String, "reasoning": pl.String, "answer": pl.String, "final_answer": pl.String,
                "facts_ref": pl.List(pl.String)},
    )  # fmt: skip


def generate_stage(
    contexts: list[dict[str, Any]],
    facts: dict[str, list[dict[str, Any]]],
    params: Params,
    stage_dir: Path,
    llm_dir: Path,
) -> dict[str, Any]:
    """Run every teacher and write pairs.jsonl, failures.jsonl and ledger.csv; returns what a notebook shows."""
    result = generate_pairs(contexts, facts, params.generate, stage_dir, llm_dir, params.seed)
    write_jsonl(stage_dir / "pairs.jsonl", result.pairs)
    write_jsonl(stage_dir / "failures.jsonl", result.failures)
    ledger = pl.read_csv(stage_dir / "ledger.csv") if (stage_dir / "ledger.csv").exists() else None
    return {
        "pairs": pairs_frame(result.pairs),
        "failures": pl.DataFrame(result.failures) if result.failures else pl.DataFrame(),
        "ledger": ledger,
        "summaries": result.summaries,
        "stopped_by_budget": result.stopped_by_budget,
    }


def example_pairs(pairs: pl.DataFrame, per_category: int = 5, seed: int = 0) -> pl.DataFrame:
    """A few pairs per category (and teacher) to read in the notebook."""
    return (
        pairs.with_columns(r=pl.int_range(pl.len()).shuffle(seed=seed).over("category", "teacher"))
        .filter(pl.col("r") < per_category)
        .sort("category", "teacher", "r")
        .select("category", "teacher", "question", "final_answer")
    )


class GenerateRecord(StageRecord):
    contexts: int
    candidates: int
    events: dict[str, int]
    engine: dict
    facts_version: str
    pairs: int
    pairs_by_teacher: dict[str, int]
    failures: int
    stopped_by_budget: bool


def run(stage: Stage) -> StageResult:
    """The 02_generate stage: contexts and their fact sheets (`facts`), then every teacher's pairs."""
    built = build_contexts_and_facts(stage.input("ingest"), stage.params, stage.dir)
    write_table(funnel_rows(built), stage.paper_dir, "table_1_contexts", "Table 1 (contexts): data funnel")
    generated = generate_stage(built["contexts"], built["facts"], stage.params, stage.dir, stage.llm_dir)
    pairs = generated["pairs"]
    record = GenerateRecord(
        contexts=len(built["contexts"]),
        candidates=len(built["candidates"]),
        events=built["events"],
        engine=built["engine"],
        facts_version=built["facts_version"],
        pairs=pairs.height,
        pairs_by_teacher=dict(pairs.group_by("teacher").len().iter_rows()),
        failures=generated["failures"].height,
        stopped_by_budget=generated["stopped_by_budget"],
    )
    record.write(stage.dir)
    return StageResult(record, {"built": built, "generated": generated})
