"""The 06 stage: resolve scenarios, write table_7, the inputs table, the sensitivity grids and figure_6."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from maritime_slm.config import CostParams
from maritime_slm.cost.figures import figure_6, table_7
from maritime_slm.cost.inputs import MissingMeasurement, measured_from_run, resolve
from maritime_slm.cost.model import annual_costs, scenario_frame, sensitivity_grid
from maritime_slm.report.tables import write_table
from maritime_slm.stage import Stage, StageRecord, StageResult


def cost_analysis(params: CostParams, stage_dirs: dict[str, Path], out_dir: Path) -> dict[str, Any]:
    measured = measured_from_run(stage_dirs)
    scenarios, skipped = [], {}
    for name, scenario in params.scenarios.items():
        try:
            scenarios.append(resolve(name, scenario, params, measured))
        except MissingMeasurement as exc:
            skipped[name] = str(exc)
    paper_dir = out_dir / "paper"
    table = table_7(scenarios)
    write_table(table, paper_dir, "table_7", "Table 7: annual inference cost, API model vs fine-tuned SLM")
    inputs = scenario_frame(scenarios)
    write_table(inputs, out_dir, "scenario_inputs", "Every input of every scenario")
    sensitivity = {}
    for s in scenarios:
        grid = sensitivity_grid(s, params.sensitivity_queries_per_day, params.sensitivity_tokens_scale)
        write_table(grid, out_dir, f"sensitivity_{s.name}", f"Reduction factor (x), {s.name}")
        sensitivity[s.name] = grid
    figure = figure_6(scenarios, params.horizon_days, paper_dir / "figure_6.png")
    return {
        "table_7": table,
        "inputs": inputs,
        "sensitivity": sensitivity,
        "figure": figure,
        "skipped": skipped,
        "measured_sources": measured.sources,
        "results": {s.name: annual_costs(s) for s in scenarios},
    }


class CostRecord(StageRecord):
    """`<scenario>_<quantity>` keys for every computed scenario (e.g. `this_run_reduction_factor`)."""

    skipped: dict[str, str]


def run(stage: Stage) -> StageResult:
    """The 06_cost_analysis stage: every earlier stage of the run that exists is a source of measured inputs."""
    result = cost_analysis(stage.params.cost, stage.inputs_before(), stage.dir)
    flat = {f"{name}_{key}": value for name, res in result["results"].items() for key, value in res.items()}
    record = CostRecord(**flat, skipped=result["skipped"])
    record.write(stage.dir)
    return StageResult(record, result)
