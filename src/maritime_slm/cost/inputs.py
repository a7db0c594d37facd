"""Resolve a scenario's inputs: from params where they are stated, from this run's stages where measured.

Measured inputs come only from earlier stages' folders: the ledgers of 02/03/05 (USD actually paid), the
training cost 04 recorded, and the tokens per query and throughput 05 recorded for the tuned student.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from maritime_slm.config import CostParams, CostScenario
from maritime_slm.cost.model import ScenarioInputs
from maritime_slm.evaluate.run import EvaluateRecord
from maritime_slm.finetune.run import FinetuneRecord
from maritime_slm.stage import SUMMARY_FILE


@dataclass
class Measured:
    one_time_usd: dict[str, float] = field(default_factory=dict)
    input_tokens_per_query: float | None = None
    output_tokens_per_query: float | None = None
    queries_per_s: float | None = None
    sources: dict[str, str] = field(default_factory=dict)


def _ledger_usd(stage_dir: Path) -> float | None:
    path = stage_dir / "ledger.csv"
    return float(pl.read_csv(path)["usd"].sum()) if path.exists() else None


def measured_from_run(stage_dirs: dict[str, Path]) -> Measured:
    """`stage_dirs`: stage name -> committed folder, for the earlier stages that exist."""
    m = Measured()
    for stage, label in [("generate", "generation (teachers)"), ("curate", "curation (editor)"),
                         ("evaluate", "evaluation (teachers, judge)")]:  # fmt: skip
        if stage in stage_dirs and (usd := _ledger_usd(stage_dirs[stage])) is not None:
            m.one_time_usd[label] = usd
            m.sources[label] = f"{stage}/ledger.csv"
    if "finetune" in stage_dirs and (stage_dirs["finetune"] / SUMMARY_FILE).is_file():
        m.one_time_usd["training (GPU-hours x price)"] = FinetuneRecord.read(
            stage_dirs["finetune"]
        ).train_cost_usd
        m.sources["training (GPU-hours x price)"] = f"finetune/{SUMMARY_FILE} train_cost_usd"
    if "evaluate" in stage_dirs and (stage_dirs["evaluate"] / SUMMARY_FILE).is_file():
        s = EvaluateRecord.read(stage_dirs["evaluate"])
        m.input_tokens_per_query = s.student_input_tokens_per_query
        m.output_tokens_per_query = s.student_output_tokens_per_query
        m.queries_per_s = s.student_queries_per_s
        if m.queries_per_s is not None:
            runtime = s.student_runtime or "Hugging Face generate"
            m.sources["tokens and throughput"] = (
                f"evaluate/{SUMMARY_FILE} (tuned student on this machine, served by {runtime})"
            )
    return m


class MissingMeasurement(ValueError):
    """A scenario asks for a measured input that no earlier stage of this run has recorded."""


def resolve(name: str, scenario: CostScenario, params: CostParams, measured: Measured) -> ScenarioInputs:
    def pick(stated, measured_value, what: str):
        if stated is not None:
            return stated
        if measured_value is None:
            raise MissingMeasurement(
                f"scenario '{name}': {what} is to be measured by 05_evaluate, which has not recorded it in this run"
            )
        return measured_value

    price = params.api_prices[scenario.api_model]
    return ScenarioInputs(
        name=name,
        queries_per_day=scenario.queries_per_day,
        input_tokens_per_query=pick(scenario.input_tokens_per_query, measured.input_tokens_per_query,
                                    "input tokens per query"),
        output_tokens_per_query=pick(scenario.output_tokens_per_query, measured.output_tokens_per_query,
                                     "output tokens per query"),
        api_model=scenario.api_model,
        api_price_in_per_m=price.price_in_per_m,
        api_price_out_per_m=price.price_out_per_m,
        serving_label=scenario.serving.label,
        serving_hour_usd=scenario.serving.hour_usd,
        serving_queries_per_s=pick(scenario.serving.queries_per_s, measured.queries_per_s, "serving throughput"),
        utilisation=scenario.serving.utilisation,
        min_instances=scenario.serving.min_instances,
        one_time_usd=scenario.one_time_usd if scenario.one_time_usd is not None else measured.one_time_usd,
        days_per_year=params.days_per_year,
    )  # fmt: skip
