"""The cost formulas on hand-computed cases, and the paper scenario reproducing 261x."""

import math
from dataclasses import replace

import pytest

from maritime_slm.config import ParamsError, load_params
from maritime_slm.cost.figures import figure_6, table_7
from maritime_slm.cost.inputs import Measured, MissingMeasurement, measured_from_run, resolve
from maritime_slm.cost.model import (
    annual_costs,
    api_cost_per_day,
    break_even_days,
    sensitivity_grid,
    serving_instances,
    slm_cost_per_day,
)
from maritime_slm.evaluate.run import EvaluateRecord


def test_api_cost_per_day_hand_computed():
    # 1,000 queries x (1,000 in x $2.50 + 100 out x $10.00) / 1e6 = 1,000 x $0.0035 = $3.50
    assert api_cost_per_day(1_000, 1_000, 100, 2.50, 10.00) == pytest.approx(3.50)


def test_serving_instances_rounds_up_and_respects_utilisation():
    # 1M/day = 11.574 q/s; 5 q/s per instance at 100% -> 3 instances; at 50% -> 5
    assert serving_instances(1_000_000, 5.0) == 3
    assert serving_instances(1_000_000, 5.0, utilisation=0.5) == 5
    assert serving_instances(10, 5.0, min_instances=2) == 2
    assert serving_instances(5.0 * 86_400, 5.0) == 1  # exactly full, no spurious extra instance


def test_slm_cost_and_break_even():
    assert slm_cost_per_day(2, 1.5) == pytest.approx(72.0)
    assert break_even_days(100.0, 30.0, 10.0) == pytest.approx(5.0)
    assert break_even_days(100.0, 10.0, 30.0) == math.inf


@pytest.fixture
def paper():
    params = load_params("smoke").cost
    return resolve("paper_assumptions", params.scenarios["paper_assumptions"], params, Measured())


def test_paper_scenario_reproduces_261x(paper):
    costs = annual_costs(paper)
    assert costs["api_usd_per_year"] == pytest.approx(2_190_000, rel=1e-9)
    assert costs["slm_usd_per_year"] == pytest.approx(8_400, rel=1e-4)
    assert costs["instances"] == 1
    assert costs["reduction_factor"] == pytest.approx(261, abs=1)


def test_sensitivity_shows_where_the_claim_breaks(paper):
    grid = sensitivity_grid(paper, [1_000, 1_000_000, 10_000_000], [1.0])
    factors = grid["tokens x1"].to_list()
    # 1k queries/day: the API costs $6/day, less than one instance ($23/day): the SLM loses
    assert factors[0] == pytest.approx(6.0 / (0.95890411 * 24), rel=1e-4)
    assert factors[0] < 1 < factors[1]
    # 10M/day needs 10 instances: the factor stays ~261, it does not grow with demand
    assert factors[2] == pytest.approx(factors[1] * 10 / 10, rel=1e-3)


def test_sensitivity_to_query_length_counts_the_slm_compute_too(paper):
    grid = sensitivity_grid(paper, [1_000, 10_000_000], [1.0, 2.0])
    low, high = grid.row(0, named=True), grid.row(1, named=True)
    # one idle instance either way at 1k/day: twice the tokens double the API bill only
    assert low["tokens x2"] == pytest.approx(2 * low["tokens x1"], rel=1e-9)
    # 10M/day: 10 instances -> 20 (half the queries/s each): both bills double, the factor stays
    assert high["tokens x2"] == pytest.approx(high["tokens x1"], rel=1e-3)


def test_this_run_needs_measurements():
    params = load_params("smoke").cost
    with pytest.raises(MissingMeasurement, match="input tokens per query is to be measured by 05_evaluate"):
        resolve("this_run", params.scenarios["this_run"], params, Measured())
    measured = Measured(one_time_usd={"generation": 0.0}, input_tokens_per_query=700.0,
                        output_tokens_per_query=60.0, queries_per_s=0.5)  # fmt: skip
    s = resolve("this_run", params.scenarios["this_run"], params, measured)
    # 11.574 q/s / (0.5 x 0.7) -> 34 instances
    assert annual_costs(s)["instances"] == 34


def test_measured_from_run_reads_ledgers_and_summaries(tmp_path):
    gen = tmp_path / "generate"
    gen.mkdir()
    (gen / "ledger.csv").write_text(
        "teacher,category,requests,cache_hits,input_tokens,output_tokens,usd,failures\n"
        "gpt-4o,traffic,3,0,100,10,0.25,0\ngpt-4o,anomaly,1,0,10,1,0.5,0\n"
    )
    ev = tmp_path / "evaluate"
    ev.mkdir()
    EvaluateRecord(
        n_items=3, models=["student-tuned"], skipped={}, predictions_from_cache=0, accuracy_student_tuned=0.5,
        student_input_tokens_per_query=600, student_output_tokens_per_query=40, student_queries_per_s=2,
    ).write(ev)  # fmt: skip
    m = measured_from_run({"generate": gen, "evaluate": ev})
    assert m.one_time_usd == {"generation (teachers)": 0.75}
    assert (m.input_tokens_per_query, m.output_tokens_per_query, m.queries_per_s) == (600, 40, 2)


def test_a_hand_off_record_that_lacks_a_key_is_refused_in_one_line(tmp_path):
    ft = tmp_path / "finetune"
    ft.mkdir()
    (ft / "_stage.json").write_text('{"backend": "hf", "steps": 3}')
    with pytest.raises(ParamsError) as err:
        measured_from_run({"finetune": ft})
    assert str(err.value).startswith(f"{ft}/_stage.json: key '")
    assert "\n" not in str(err.value)


def test_table_and_figure(paper, tmp_path):
    table = table_7([paper, replace(paper, name="cheaper_gpu", serving_hour_usd=0.5)])
    row = dict(zip(table["quantity"], table["paper_assumptions"], strict=True))
    assert row["reduction factor (x)"] == pytest.approx(260.7, abs=0.1)
    assert table.columns == ["quantity", "paper_reported", "paper_assumptions", "cheaper_gpu"]
    path = figure_6([paper], 730, tmp_path / "figure_6.png")
    assert path.stat().st_size > 10_000
