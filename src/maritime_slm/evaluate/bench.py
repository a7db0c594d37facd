"""`python -m maritime_slm bench`: any OpenAI-compatible model on a finished run's grounded test split.

The same items as the run's 05_evaluate (its `evaluate.max_items`, spread over categories, unless `max_items` says
otherwise), the same prompt, token limit and grounded scoring, through `maritime_slm.llm` (request cache, ledger,
retries, budget); the model's answers are put beside the run's own models (the tuned student, the train prior...)
on the items they share, with Wilson CIs and exact McNemar against the tuned student and the prior. Results go to
`outputs/<run>/bench/<name>/`; the run's stage folders are not touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

from maritime_slm.config import ModelEndpoint, load_resolved
from maritime_slm.evaluate.analysis import accuracy_table, mcnemar_table, speed_table
from maritime_slm.evaluate.cache import PredictionCache
from maritime_slm.evaluate.items import load_items
from maritime_slm.evaluate.predict import PRIOR_NAME, TUNED_NAME, teacher_predictions
from maritime_slm.evaluate.run import PREDICTIONS_FILE, prediction_cache_dir
from maritime_slm.evaluate.score import score_predictions
from maritime_slm.facts.build import load_facts
from maritime_slm.jsonl import read_jsonl
from maritime_slm.llm import Budget, Ledger, RequestCache
from maritime_slm.llm.session import LLMSession
from maritime_slm.report.tables import write_table


class BenchError(ValueError):
    """The run folder lacks what the benchmark reads (the message names the file and the stage that writes it)."""


def _need(path: Path, stage: str) -> Path:
    if not path.exists():
        raise BenchError(f"{path} not found: run the {stage} stage of this run first")
    return path


def bench(
    run_dir: Path,
    endpoint: ModelEndpoint,
    *,
    max_items: int | None = None,
    budget_usd: float = 0.0,
    progress: bool = True,
) -> dict[str, Any]:
    """Score `endpoint` on the run's test items; write and return the tables (accuracy beside the run's models)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise BenchError(f"{run_dir} is not a run folder: no such directory")
    params = load_resolved(run_dir)
    price = params.cost.api_prices.get(endpoint.model)
    if price is not None and not (endpoint.price_in_per_m or endpoint.price_out_per_m):
        endpoint = endpoint.model_copy(  # an API model of the cost table: the budget knows what it costs
            update={"price_in_per_m": price.price_in_per_m, "price_out_per_m": price.price_out_per_m}
        )
    curate, generate = run_dir / "curate", run_dir / "generate"
    _need(curate / "dataset" / "test.jsonl", "curate")
    items = load_items(curate, max_items or params.evaluate.max_items)
    by_id = {it.id: it for it in items}
    facts = load_facts(_need(generate / "facts.jsonl", "generate"))
    contexts = {c["context_id"]: c for c in read_jsonl(generate / "contexts.jsonl")}
    out = run_dir / "bench" / endpoint.name
    out.mkdir(parents=True, exist_ok=True)
    llm_dir = run_dir / "llm"
    with (
        PredictionCache(prediction_cache_dir(llm_dir)) as cache,
        Ledger(llm_dir / "bench" / endpoint.name) as ledger,
    ):
        llm = LLMSession(RequestCache(llm_dir / "cache.sqlite"), ledger, Budget(budget_usd, ledger.total_usd()),
                         progress)  # fmt: skip
        answers, summary = teacher_predictions(endpoint, items, params, cache, llm)
        ledger.write_csv(out / "ledger.csv")
    df = score_predictions(answers, by_id, facts, contexts, None)
    df.write_ndjson(out / PREDICTIONS_FILE)
    models = [endpoint.name]
    evaluated = run_dir / "evaluate" / PREDICTIONS_FILE
    if evaluated.is_file():
        theirs = pl.read_ndjson(evaluated).filter(pl.col("item_id").is_in(list(by_id)))
        theirs = theirs.filter(pl.col("model") != endpoint.name)
        models += [
            m for m in (TUNED_NAME, PRIOR_NAME, "student-base", "rules-oracle") if m in theirs["model"]
        ]
        df = pl.concat([df, theirs.select(df.columns).cast(df.schema)], how="vertical")
    acc = accuracy_table(df, models)
    by_cat = accuracy_table(df, models, by_category=True)
    pairs = [(other, endpoint.name) for other in (TUNED_NAME, PRIOR_NAME) if other in models]
    mcnemar = mcnemar_table(df, pairs) if pairs else pl.DataFrame()
    speed = speed_table(df, [endpoint.name], {endpoint.name: endpoint.concurrency})
    title = f"{endpoint.name} ({endpoint.model}) on {len(items)} test items of run {run_dir.name}"
    for name, frame, what in [
        ("accuracy", acc, "grounded accuracy beside the run's models, 95 % Wilson CI"),
        ("accuracy_by_category", by_cat, "grounded accuracy per category, 95 % Wilson CI"),
        ("mcnemar", mcnemar, "exact McNemar vs the tuned student and the train prior, same items"),
        ("speed", speed, "latency and throughput as measured from this machine"),
    ]:
        if len(frame):
            write_table(frame, out, name, f"{title}: {what}")
    return {"out_dir": out, "n_items": len(items), "summary": summary, "accuracy": acc,
            "accuracy_by_category": by_cat, "mcnemar": mcnemar, "speed": speed}  # fmt: skip
