"""The year-of-AIS cost preview (issue 16): the paper profile's requests rendered by the stages' own code on the
shipped AIS sample, counted with o200k_base and scaled with the arithmetic it prints."""

from __future__ import annotations

import pytest

from maritime_slm.__main__ import main
from maritime_slm.config import load_params
from maritime_slm.cost.year import SAMPLE_INPUT, run_year_preview
from maritime_slm.llm.preview import BATCH_PRICE_SHARE


@pytest.mark.slow
def test_paper_year_preview_from_the_sample(capsys):
    params = load_params("paper", [f"ingest.inputs=['{SAMPLE_INPUT}']"])
    generate, curate, evaluate = run_year_preview(params, n_sample=6)
    per_teacher = params.contexts.n_contexts * params.generate.pairs_per_context
    teachers = {r.endpoint: r for r in generate.roles}
    assert set(teachers) == {"gpt-4o", "o3-mini"}
    assert all(r.requests == per_teacher and r.tokenizer == "o200k_base" for r in teachers.values())
    # o3-mini's ceiling is its whole max_tokens on every request: hidden reasoning is billed as output
    assert teachers["o3-mini"].output_tokens_ceiling == per_teacher * 25_000
    # a year's context is as large as the student's token budget lets it be, so a prompt is ~20k tokens or more
    assert 15_000 < teachers["gpt-4o"].input_tokens / per_teacher < 40_000
    gpt = teachers["gpt-4o"]
    assert gpt.usd_ceiling == pytest.approx((gpt.input_tokens * 2.5 + gpt.output_tokens_ceiling * 10.0) / 1e6)
    assert gpt.usd_ceiling_batch == pytest.approx(BATCH_PRICE_SHARE * gpt.usd_ceiling)
    assert [r.role for r in curate.roles] == ["editor"] and curate.roles[
        0
    ].requests == params.curate.max_revisions
    items = params.evaluate.llm_max_items
    assert [(r.role, r.requests) for r in evaluate.roles] == [("answers", items), ("answers", items),
                                                              ("judge", items * 6)]  # fmt: skip
    # teachers' answers are timed sync calls: priced sync even on a batch endpoint; the judge goes by batch
    assert [r.batch for r in evaluate.roles] == [False, False, True]
    assert (
        evaluate.roles[0].checked_usd == evaluate.roles[0].usd_ceiling > evaluate.roles[0].usd_ceiling_batch
    )
    assert "tokens per vessel" not in generate.scale_note and "per vessel" in generate.scale_note
    # the paper's budgets cover a year's worst case at the prices each role pays, so the run can start
    assert not generate.problems() and not curate.problems() and not evaluate.problems()
    tight = load_params("paper", [f"ingest.inputs=['{SAMPLE_INPUT}']", "curate.budget_usd=100"])
    assert run_year_preview(tight, n_sample=6)[1].problems()

    assert main(["cost-preview", "--profile", "paper", "--contexts-sample", "4"]) == 0
    out = capsys.readouterr().out
    assert out.count("cost preview:") == 3 and "all stages: ceiling $" in out and "OVER BUDGET" not in out
