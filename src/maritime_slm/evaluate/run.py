"""The evaluate stage: every model answers the held-out test set; grounded and judged scores; statistics; the paper
artifacts. `run(stage)` (over `evaluate_run`) is what notebook 05 calls.

Layout: `stage_dir/predictions.jsonl` (one line per model x item: reply, parsed final answer, latency, tokens,
grounded and judged scores, BLEU, ROUGE-L), the statistics tables (CSV + Markdown), `ledger.csv` / `calls.jsonl`
of the LLM calls (teachers, judge), and `stage_dir/paper/` with table_5, table_6 and figure_5. Caches live
outside the stage folder: student and teacher answers and judge grades in `<llm_dir>/../predictions_cache/`,
raw LLM replies in `<llm_dir>/cache.sqlite` (shared with generation and curation), the call log in
`<llm_dir>/evaluate/`. A re-run of an unchanged stage is served from them: no model is loaded, no server started,
nothing paid.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from maritime_slm.config import ModelEndpoint, Params
from maritime_slm.evaluate.analysis import (
    accuracy_table,
    finite,
    kappa_table,
    mcnemar_table,
    paradox_correlations,
    paradox_table,
    speed_table,
)
from maritime_slm.evaluate.cache import PredictionCache
from maritime_slm.evaluate.figures import (
    figure_5,
    model_labels,
    table_5,
    table_5_title,
    table_5_wording,
    table_5_wording_title,
    table_6,
    table_6_title,
)
from maritime_slm.evaluate.items import EvalItem, load_items, spread_over_categories
from maritime_slm.evaluate.judge import (
    CANDIDATE_CHARS,
    JudgeGrade,
    judge_endpoint,
    judge_plan,
    judge_predictions,
)
from maritime_slm.evaluate.predict import (
    BASE_NAME,
    ORACLE_NAME,
    PRIOR_NAME,
    ROLE_BASE,
    ROLE_TUNED,
    TUNED_NAME,
    Loader,
    Prediction,
    answer_plan,
    oracle_predictions,
    prior_predictions,
    student_identity,
    teacher_max_tokens,
    teacher_predictions,
)
from maritime_slm.evaluate.score import score_predictions
from maritime_slm.evaluate.served import Students
from maritime_slm.evaluate.wording import paired_wording_table, wording_twins
from maritime_slm.facts.build import load_facts
from maritime_slm.finetune.data import dataset_dir, read_split
from maritime_slm.jsonl import read_jsonl
from maritime_slm.llm.preview import CostPreview, announce, measured_output, preview_role
from maritime_slm.llm.session import LLMSession, llm_session
from maritime_slm.report.tables import write_table
from maritime_slm.stage import Stage, StageRecord, StageResult

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.jsonl"
TWIN_PREDICTIONS_FILE = "wording_twins.jsonl"
PREDICTION_CACHE_DIR = "predictions_cache"


def prediction_cache_dir(llm_dir: Path) -> Path:
    """`<run>/predictions_cache/` beside `<run>/llm/`: outside the stage folder, which is replaced on success."""
    return Path(llm_dir).parent / PREDICTION_CACHE_DIR


STUDENT_NAMES = {
    "tiny-random-qwen2": "tiny random Qwen2",
    "smollm2-135m-gguf": "SmolLM2-135M-Instruct",
}


def student_name(params: Params) -> str:
    """The student's name for legends: the hub id, or what the local student is."""
    if params.finetune.student == "hub":
        return str(params.finetune.model_name)
    return STUDENT_NAMES.get(params.finetune.student, params.finetune.student)


@dataclass
class Answers:
    """Every model's answers to the test items, and what the statistics need to know about how they were got."""

    items: list[EvalItem]
    llm_items: list[EvalItem]
    facts: dict[str, Any]
    contexts: dict[str, dict[str, Any]]
    predictions: list[Prediction] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    twins: list[EvalItem] = field(default_factory=list)
    twin_predictions: list[Prediction] = field(default_factory=list)
    grades: Any = None
    reference: list[Prediction] = field(default_factory=list)
    agreement: pl.DataFrame = field(default_factory=pl.DataFrame)
    runtimes: dict[str, str] = field(default_factory=dict)
    concurrency: dict[str, int] = field(default_factory=dict)
    summaries: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def by_id(self) -> dict[str, EvalItem]:
        return {it.id: it for it in self.items}

    def scored_twins(self) -> pl.DataFrame:
        """The held-out-worded items' twins, scored like the items (see `evaluate.wording`)."""
        if not self.twin_predictions:
            return pl.DataFrame()
        by_id = {it.id: it for it in self.twins}
        return score_predictions(self.twin_predictions, by_id, self.facts, self.contexts, None)


def evaluate_run(
    generate_dir: Path,
    curate_dir: Path,
    finetune_dir: Path,
    params: Params,
    stage_dir: Path,
    llm_dir: Path,
    *,
    progress: bool = True,
    loader: Loader | None = None,
) -> dict[str, Any]:
    """Answer, score and compare; write predictions, tables and the paper artifacts; return what the notebook shows.

    `result["record"]` becomes the stage's `EvaluateRecord` (the tuned student's tokens per query and
    throughput are the cost stage's measured inputs). `loader` replaces `finetune.load_for_inference` (tests)."""
    stage_dir = Path(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    answers = collect_answers(
        generate_dir, curate_dir, finetune_dir, params, stage_dir, Path(llm_dir), progress, loader
    )
    df = score_predictions(
        answers.predictions, answers.by_id, answers.facts, answers.contexts, answers.grades
    )
    df.write_ndjson(stage_dir / PREDICTIONS_FILE)
    twins = answers.scored_twins()
    if len(twins):
        twins.write_ndjson(stage_dir / TWIN_PREDICTIONS_FILE)
    stats = statistics(df, answers, params.evaluate.batch_size, twins)
    for name, (frame, title) in stats.items():
        if len(frame):
            write_table(frame, stage_dir, name, title)
    shown = {name: frame for name, (frame, _) in stats.items()}
    paper = paper_artifacts(shown, answers, params, stage_dir / "paper")
    record = _record(df, shown["accuracy"], shown["kappa"], shown["speed"], answers.items, answers.models,
                     answers.skipped, params)  # fmt: skip
    record["student_runtime"] = answers.runtimes.get(TUNED_NAME) or answers.runtimes.get(BASE_NAME)
    if len(answers.agreement):
        record["served_agreement"] = {
            r["quantization"]: finite(r["agreement"]) for r in answers.agreement.iter_rows(named=True)
        }
    return {
        "n_items": len(answers.items),
        "models": answers.models,
        "predictions": df,
        **shown,
        **paper,
        "skipped": answers.skipped,
        "summaries": answers.summaries,
        "record": record,
        **{
            k: record[k]
            for k in (
                "student_input_tokens_per_query",
                "student_output_tokens_per_query",
                "student_queries_per_s",
            )
        },  # fmt: skip
    }


def collect_answers(
    generate_dir: Path,
    curate_dir: Path,
    finetune_dir: Path,
    params: Params,
    stage_dir: Path,
    llm_dir: Path,
    progress: bool,
    loader: Loader | None,
) -> Answers:
    """The students (served GGUF or HF), the context-blind baselines, the teachers and the judge, each through
    the prediction cache, so a re-run asks no model twice."""
    ev = params.evaluate
    items = load_items(Path(curate_dir), ev.max_items)
    if not items:
        raise ValueError(f"the test split in {curate_dir}/dataset/test.jsonl is empty: nothing to evaluate")
    out = Answers(
        items=items,
        llm_items=spread_over_categories(items, ev.llm_max_items),
        facts=load_facts(Path(generate_dir) / "facts.jsonl"),
        contexts={c["context_id"]: c for c in read_jsonl(Path(generate_dir) / "contexts.jsonl")},
    )
    by_id, skipped = out.by_id, out.skipped
    adapter = Path(finetune_dir) / "adapter"
    has_adapter = (adapter / "adapter_config.json").is_file()
    if not has_adapter:
        skipped[TUNED_NAME] = f"no LoRA adapter at {adapter} (run 04_finetune first)"
    teachers = list(params.generate.teachers) if ev.evaluate_teachers else []
    if not ev.evaluate_teachers:
        skipped["teachers"] = "evaluate.evaluate_teachers is false"
    elif not teachers:
        skipped["teachers"] = "no LLM teacher in params (generate.teachers)"
    if ev.judge is None:
        skipped["judge"] = "no judge model in params (evaluate.judge): judged accuracy and kappa not computed"
    baselines = oracle_predictions(items, out.facts)  # not models: no load, no request, recomputed each run
    train_split = dataset_dir(Path(curate_dir)) / "train.jsonl"
    if train_split.is_file():
        baselines += prior_predictions(items, read_split(train_split))
    else:
        skipped[PRIOR_NAME] = f"no train split at {train_split}"

    with (
        PredictionCache(prediction_cache_dir(llm_dir)) as cache,
        llm_session(llm_dir, "evaluate", ev.budget_usd, progress) as llm,
    ):
        students = Students(Path(finetune_dir), params, cache, llm, loader, progress)
        asked = [(BASE_NAME, ROLE_BASE, None)] + ([(TUNED_NAME, ROLE_TUNED, adapter)] if has_adapter else [])
        for name, role, adapter_dir in asked:
            answers, out.runtimes[name], summary = students.answers(items, name, role, adapter_dir)
            out.predictions += answers
            out.models.append(name)
            if summary:
                out.summaries[name] = summary
        out.twins = wording_twins(items, out.facts) if has_adapter else []
        if out.twins:
            out.twin_predictions, _, _ = students.answers(out.twins, TUNED_NAME, ROLE_TUNED, adapter)
        if ev.student_runtime == "llama.cpp" and ev.reference_items and has_adapter:
            out.reference, out.agreement = students.hf_agreement(
                spread_over_categories(items, ev.reference_items),
                [p for p in out.predictions if p.model == TUNED_NAME], adapter, by_id, out.facts, out.contexts,
            )  # fmt: skip

        # teachers and judge, through the llm package: a cost preview first, then each on its own line
        lines = paid_roles(
            params, teachers, out.predictions + baselines, out.llm_items, by_id, cache, llm, stage_dir
        )
        for teacher in teachers:
            answers, out.summaries[teacher.name] = teacher_predictions(
                teacher, out.llm_items, params, cache, lines[teacher.name]
            )
            out.predictions += answers
            out.models.append(teacher.name)
            out.concurrency[teacher.name] = teacher.concurrency
        out.predictions += baselines
        if ev.judge is not None:
            out.grades, out.summaries["judge"] = _judge_subset(
                ev.judge, out.predictions, out.llm_items, by_id, cache, lines[ev.judge.name]
            )
        llm.publish(stage_dir)
        out.models += sorted({p.model for p in baselines}, key=[ORACLE_NAME, PRIOR_NAME].index)
    return out


def statistics(
    df: pl.DataFrame, answers: Answers, batch_size: int, twins: pl.DataFrame
) -> dict[str, tuple[pl.DataFrame, str]]:
    """Every table of the stage (an empty frame where it does not apply), with its title; `twins` are the scored
    seen-worded twins of the held-out-worded items."""
    models, judged = answers.models, answers.grades is not None
    vs_prior_of = [(PRIOR_NAME, m) for m in models if m not in (PRIOR_NAME, ORACLE_NAME)]
    tuned_pairs = [(TUNED_NAME, m) for m in models if m not in (TUNED_NAME, ORACLE_NAME)]
    speed = speed_table(df, models, answers.concurrency)
    runtimes = dict(answers.runtimes)
    if answers.reference:
        reference = answers.reference
        timed = pl.DataFrame([p.as_dict() for p in reference])  # timing columns only: no second scoring
        speed = pl.concat([speed, speed_table(timed, [reference[0].model], {})], how="diagonal_relaxed")
        runtimes[reference[0].model] = f"hf float32 (batch {batch_size}), the reference"
    if len(speed):
        speed = speed.with_columns(
            pl.col("model").replace_strict(runtimes, default=None, return_dtype=pl.String).alias("runtime")
        )
    return {
        "accuracy": (accuracy_table(df, models), "Grounded accuracy per model, 95 % Wilson CI"),
        "accuracy_by_category": (
            accuracy_table(df, models, by_category=True),
            "Grounded accuracy per model and category, 95 % Wilson CI",
        ),
        "accuracy_by_wording": (
            accuracy_table(df, models, by="phrasing"),
            "Grounded accuracy per model on seen vs held-out (unseen) question wordings, 95 % Wilson CI",
        ),
        "accuracy_by_wording_paired": (
            paired_wording_table(pl.concat([df, twins], how="vertical_relaxed"), models)
            if len(twins)
            else pl.DataFrame(),
            "The held-out-worded test items and the same facts asked in a training wording (their twins): "
            "accuracy with each wording, the gap with its 95 % paired (Newcombe) CI, exact McNemar p",
        ),
        "accuracy_by_family": (
            accuracy_table(df, models, by="family"),
            "Grounded accuracy per model and kind of question (fact family)",
        ),
        "mcnemar_vs_prior": (
            mcnemar_table(df, vs_prior_of),
            "Exact McNemar: each model vs the context-blind train prior",
        ),
        "judged_accuracy": (
            accuracy_table(df, models, column="judged") if judged else pl.DataFrame(),
            "Judged accuracy per model (unparseable grades counted incorrect)",
        ),
        "mcnemar": (
            mcnemar_table(df, tuned_pairs) if TUNED_NAME in models else pl.DataFrame(),
            "Exact McNemar: tuned student vs base and vs each teacher, on shared items",
        ),
        "mcnemar_vs_base": (
            mcnemar_table(df, [(BASE_NAME, m) for m in models if m != BASE_NAME]),
            "Exact McNemar: each model vs the base student, on shared items",
        ),
        "kappa": (
            kappa_table(df, models) if judged else pl.DataFrame(),
            "Agreement of the LLM judge with grounded scoring: Cohen's kappa, 95 % CI",
        ),
        "speed": (speed, "Latency, tokens per query and throughput per model (this machine)"),
        "served_agreement": (
            answers.agreement,
            "Served GGUF (llama.cpp) vs Hugging Face generate: same final answer per quantization, on the "
            "tuned student",
        ),
        "paradox": (paradox_table(df, models), "BLEU / ROUGE-L vs judged and grounded accuracy per model"),
        "paradox_by_category": (
            paradox_table(df, models, by_category=True),
            "BLEU / ROUGE-L vs judged and grounded accuracy per category",
        ),
        "paradox_correlation": (
            paradox_correlations(df, models),
            "Correlation of BLEU / ROUGE-L with grounded correctness",
        ),
    }


def paper_artifacts(
    shown: dict[str, pl.DataFrame], answers: Answers, params: Params, paper: Path
) -> dict[str, Any]:
    """Table 5 (and 5b, wording), table 6 and figure 5."""
    ev, models, n_items = params.evaluate, answers.models, len(answers.items)
    t5 = table_5(shown["accuracy"], shown["mcnemar_vs_base"], shown["mcnemar_vs_prior"], ev.paper_accuracy)
    write_table(t5, paper, "table_5", table_5_title(n_items, ev.paper_accuracy, len(answers.llm_items)))
    t5w = table_5_wording(shown["accuracy_by_wording"], shown["accuracy_by_wording_paired"], models)
    if len(t5w):
        write_table(t5w, paper, "table_5_wording", table_5_wording_title())
    judge_note = _judge_note(
        shown["kappa"], ev.judge.name if ev.judge else None, answers.skipped.get("judge")
    )
    t6 = table_6(shown["paradox"])
    write_table(t6, paper, "table_6", table_6_title(shown["paradox_correlation"], judge_note))
    fig = figure_5(
        shown["accuracy_by_category"], models, paper / "figure_5.png",
        f"Figure 5. Grounded accuracy per category (held-out test set, {n_items} items)",
        model_labels(models, student_name(params)),
    )  # fmt: skip
    return {"table_5": t5, "table_5_wording": t5w, "table_6": t6, "figure_5": fig}


def paid_roles(
    params: Params,
    teachers: list[ModelEndpoint],
    known: list[Prediction],
    llm_items: list[EvalItem],
    by_id: dict[str, EvalItem],
    cache: PredictionCache,
    llm: LLMSession,
    stage_dir: Path,
) -> dict[str, LLMSession]:
    """The cost preview of the teacher answers and the judge (printed, written to `stage_dir`, refused when it does
    not fit), then an `LLMSession` per role on its own budget line (`evaluate.teacher_budget_usd` for each
    teacher's answers, `evaluate.judge.budget_usd` for the judge), every line made before the first call.

    The judge grades replies the teachers have not given yet: the preview counts each such reply at its ceiling
    (the answer's max_tokens, cut where the judge prompt cuts a reply), the known ones (students, baselines, cached
    answers) as they are."""
    ev, ledger = params.evaluate, llm.ledger
    spent = llm.spent_by()
    log = ledger.log_path if ledger is not None else stage_dir / "calls.jsonl"
    roles, judged = [], [p for p in known if p.item_id in {it.id for it in llm_items}]
    for teacher in teachers:
        plan = answer_plan(teacher, llm_items, params, cache)
        roles.append(preview_role(
            "answers", plan.endpoint, plan.requests, request_cache=llm.request_cache,
            line_key="evaluate.teacher_budget_usd", line_usd=None if teacher.local else ev.teacher_budget_usd,
            line_spent_usd=spent.get(teacher.name, 0.0), expected_output=measured_output(log, teacher.name),
        ))  # fmt: skip
        ceiling = " x" * min(teacher_max_tokens(plan.endpoint, ev.max_new_tokens), CANDIDATE_CHARS // 2)
        judged += list(plan.cached.values()) + [
            Prediction(it.id, teacher.name, "teacher", reply=ceiling, final_answer=None)
            for it in plan.missing
        ]
    if ev.judge is not None:
        _, _, requests = judge_plan(ev.judge, judged, by_id, cache)
        role = preview_role(
            "judge", judge_endpoint(ev.judge), requests, request_cache=llm.request_cache,
            line_key="evaluate.judge.budget_usd",
            line_usd=ev.judge.budget_usd, line_spent_usd=spent.get(ev.judge.name, 0.0),
            expected_output=measured_output(log, ev.judge.name),
        )  # fmt: skip
        if any(r.requests for r in roles):
            role.notes.append("teacher replies not given yet are counted at their ceiling (max_tokens, cut at "
                              f"{CANDIDATE_CHARS} characters as the judge prompt cuts them)")  # fmt: skip
        roles.append(role)
    spent_all = ledger.total_usd() if ledger is not None else 0.0
    if roles:
        preview = CostPreview(
            "evaluate (teacher answers, judge)", roles, "evaluate.budget_usd", ev.budget_usd, spent_all
        )
        announce(preview, stage_dir, ev.refuse_over_budget, "evaluate.refuse_over_budget")
    budget = llm.budget
    out: dict[str, LLMSession] = {}
    for endpoint, limit in [(t, ev.teacher_budget_usd) for t in teachers] + (
        [(ev.judge, ev.judge.budget_usd)] if ev.judge is not None else []
    ):
        line = None
        if budget is not None:
            line = budget.line(None if endpoint.local else limit, spent_usd=spent.get(endpoint.name, 0.0))
        out[endpoint.name] = LLMSession(llm.request_cache, ledger, line, llm.progress)
    return out


def _judge_subset(judge, predictions: list[Prediction], llm_items: list[EvalItem], by_id, cache, llm):
    """Judge grades for the predictions on `llm_items` (evaluate.llm_max_items); the others are `not_judged`."""
    asked = {it.id for it in llm_items}
    chosen = [i for i, p in enumerate(predictions) if p.item_id in asked]
    sub, summary = judge_predictions(judge, [predictions[i] for i in chosen], by_id, cache, llm)
    grades = [JudgeGrade(None, "not_judged") for _ in predictions]
    for i, grade in zip(chosen, sub, strict=True):
        grades[i] = grade
    return grades, summary


def _judge_note(kappa: pl.DataFrame, judge: str | None, reason: str | None) -> str:
    if judge is None:
        return f"Judged accuracy not computed: {reason}."
    pooled = kappa.filter(pl.col("scope").str.starts_with("all")) if len(kappa) else kappa
    if pooled.is_empty():
        return f"Judge {judge}: no prediction could be both judged and grounded."
    r = pooled.row(0, named=True)
    k, low, high = finite(r["kappa"]), finite(r["ci_low"]), finite(r["ci_high"])
    if k is None:
        agreement = "kappa undefined (both gave one label to everything)"
    elif low is None or high is None:
        agreement = f"kappa = {k:.2f} (no CI: one of the two gave the same grade to every prediction)"
    else:
        agreement = f"kappa = {k:.2f} [95 % CI {low:.2f}, {high:.2f}]"
    return (
        f"Judge {judge} vs grounded scoring on {r['n']} predictions: {agreement}, observed agreement "
        f"{100 * r['observed_agreement']:.1f} %; {r['judge_unparseable']} unparseable grades counted incorrect."
    )


def _record(df, acc, kappa, speed, items, models, skipped, params: Params) -> dict[str, Any]:
    """Flat numbers for the run manifest; the student_* keys are the cost stage's measured inputs."""
    rec: dict[str, Any] = {"n_items": len(items), "models": models, "skipped": skipped}
    for r in acc.iter_rows(named=True):
        rec[f"accuracy_{r['model']}"] = finite(r["accuracy"])
        rec[f"accuracy_ci_{r['model']}"] = [finite(r["ci_low"]), finite(r["ci_high"])]
    if len(kappa):
        pooled = kappa.row(0, named=True)
        rec["judge_kappa"] = finite(pooled["kappa"])
        rec["judge_kappa_ci"] = [finite(pooled["ci_low"]), finite(pooled["ci_high"])]
    rec["predictions_from_cache"] = int(df["cached"].sum())
    tuned = speed.filter(pl.col("model") == TUNED_NAME) if len(speed) else speed
    if len(tuned):
        r = tuned.row(0, named=True)
        rec["student_input_tokens_per_query"] = r["input_tokens_per_query"]
        rec["student_output_tokens_per_query"] = r["output_tokens_per_query"]
        rec["student_queries_per_s"] = r["queries_per_s"]
        rec["student_batch_size"] = r["batch_size"]
        rec["student_device"] = student_identity(params, None)["device"]
    else:
        rec |= dict.fromkeys(
            ("student_input_tokens_per_query", "student_output_tokens_per_query", "student_queries_per_s")
        )
    return rec


class EvaluateRecord(StageRecord):
    """The tuned student's tokens per query, throughput and runtime are the cost stage's measured inputs; the
    per-model `accuracy_<model>` and `accuracy_ci_<model>` keys ride along for the manifest."""

    n_items: int
    models: list[str]
    skipped: dict[str, str]
    predictions_from_cache: int
    student_input_tokens_per_query: float | None = None
    student_output_tokens_per_query: float | None = None
    student_queries_per_s: float | None = None
    student_runtime: str | None = None


def run(stage: Stage) -> StageResult:
    """The 05_evaluate stage."""
    result = evaluate_run(
        stage.input("generate"), stage.input("curate"), stage.input("finetune"), stage.params, stage.dir,
        stage.llm_dir,
    )  # fmt: skip
    record = EvaluateRecord(**result["record"])
    record.write(stage.dir)
    return StageResult(record, result)
