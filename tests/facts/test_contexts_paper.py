"""Paper-scale contexts (issue 16): the compact layout fits 500 vessels in Qwen2.5's 32k window, and the paper
profile's sampling finds contexts of 200-500 vessels in dense traffic."""

from pathlib import Path

import pytest

from maritime_slm.ais.ingest import read_ais
from maritime_slm.ais.simulate import simulate
from maritime_slm.config import ContextParams, FactsParams, load_params
from maritime_slm.facts.contexts import sample_contexts
from maritime_slm.facts.factsheet import compute_facts
from maritime_slm.models import context_token_counter, count_tokens

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "AIS_2022_01_03_first99999.zip"


@pytest.fixture(scope="module")
def sample_points():
    points, _ = read_ais(SAMPLE)
    return points.lazy()


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    folder = tmp_path_factory.mktemp("raw")
    (folder / "AIS_2024_01_01.csv").write_text("x\n")
    return load_params("paper", [f"ingest.inputs=['{folder}/*.csv']"])


def tokens_per_vessel(contexts) -> float:
    return sum(c["n_tokens"] for c in contexts) / sum(len(c["vessels"]) for c in contexts)


def test_compact_layout_halves_the_tokens_a_vessel_costs_and_keeps_every_fact(sample_points):
    same = dict(n_contexts=12, vessels_per_context=12, token_budget=100_000, reports_per_vessel=2, seed=3)
    table, _, _ = sample_contexts(
        sample_points, {}, ContextParams(**same), FactsParams(), count_tokens, False
    )
    compact, _, _ = sample_contexts(
        sample_points, {}, ContextParams(**same, layout="compact"), FactsParams(), count_tokens, False
    )
    assert [c["vessels"] for c in compact] == [c["vessels"] for c in table]
    assert [c["reports"] for c in compact] == [c["reports"] for c in table]
    assert [compute_facts(c, FactsParams()) for c in compact] == [
        compute_facts(c, FactsParams()) for c in table
    ]
    assert tokens_per_vessel(compact) <= 0.62 * tokens_per_vessel(table)
    for ctx in compact:
        for r in ctx["reports"]:
            assert f"{r['ts'][11:19]} {r['lat']:.4f} {r['lon']:.4f}" in ctx["text"]
        for v in ctx["vessels"]:
            assert f"{v['mmsi']}|{v['name'] or '-'}|{v['type_group']}|" in ctx["text"]


def test_paper_rendering_fits_500_vessels_in_the_students_window(sample_points, paper):
    """The paper profile's layout and reports on the real sample: tokens per vessel, counted for Qwen2.5."""
    params = paper.contexts.model_copy(
        update={
            "n_contexts": 24,
            "vessels_per_context": 12,
            "min_vessels": 3,
            "cell_deg": 0.2,
            "token_budget": 10**5,
        }
    )
    counter = context_token_counter(paper.train)
    contexts, _, _ = sample_contexts(sample_points, {}, params, FactsParams(), counter, progress=False)
    header = max(counter([c["text"].split("\n" + str(c["vessels"][0]["mmsi"]), 1)[0]])[0] for c in contexts)
    assert header + 500 * tokens_per_vessel(contexts) <= paper.contexts.token_budget


@pytest.mark.slow
def test_paper_contexts_hold_200_to_500_vessels_within_the_window(tmp_path, paper):
    csv_path, _ = simulate(n_vessels=1500, hours=0.5, seed=1, anomaly_rate=0.05, malformed_lines=0,
                           out_dir=tmp_path, ports=["Houston", "Galveston"])  # fmt: skip
    points, _ = read_ais(csv_path)
    params = paper.contexts.model_copy(update={"n_contexts": 2})
    counter = context_token_counter(paper.train)
    contexts, cells, _ = sample_contexts(points.lazy(), {}, params, FactsParams(), counter, progress=False)
    assert len(contexts) == 2 and (cells["n_vessels"] >= 200).all()
    for ctx in contexts:
        assert 200 <= len(ctx["vessels"]) <= 500
        assert (
            ctx["n_tokens"]
            == counter([ctx["text"]])[0]
            <= paper.contexts.token_budget
            < paper.train.max_length
        )
        categories = {f["category"] for f in compute_facts(ctx, FactsParams())}
        assert categories == {
            "vessel_profile",
            "kinematics",
            "traffic",
            "anomaly",
            "collision_risk",
            "compliance",
        }
