"""Contexts on the real MarineCadastre sample: budgets, strata, determinism, answerable facts."""

from pathlib import Path

import polars as pl
import pytest

from maritime_slm.config import ContextParams, FactsParams
from maritime_slm.facts.contexts import STRATA, region_expr, sample_contexts, stratified_sample
from maritime_slm.facts.factsheet import compute_facts
from maritime_slm.ingest.files import read_ais
from maritime_slm.models import count_tokens

SAMPLE = Path(__file__).resolve().parents[2] / "data" / "sample" / "AIS_2022_01_03_first99999.zip"
PARAMS = ContextParams(n_contexts=24, vessels_per_context=6, token_budget=600, reports_per_vessel=2, seed=3)


@pytest.fixture(scope="module")
def sample_points():
    points, _ = read_ais(SAMPLE)
    return points.lazy()


@pytest.fixture(scope="module")
def sampled(sample_points):
    return sample_contexts(sample_points, {}, PARAMS, FactsParams(), count_tokens, progress=False)


def test_contexts_respect_size_and_budget(sampled):
    contexts, cells, _ = sampled
    assert len(contexts) == PARAMS.n_contexts
    for ctx in contexts:
        assert ctx["n_tokens"] <= PARAMS.token_budget
        assert count_tokens([ctx["text"]])[0] == ctx["n_tokens"]
        assert 2 <= len(ctx["vessels"]) <= PARAMS.vessels_per_context
        mmsis = {v["mmsi"] for v in ctx["vessels"]}
        assert {r["mmsi"] for r in ctx["reports"]} == mmsis
        for r in ctx["reports"]:
            assert ctx["window_start"] <= r["ts"] < ctx["window_end"]
            assert f"{r['lat']:.4f}" in ctx["text"]
    assert len(cells) > PARAMS.n_contexts


def test_sampling_is_stratified_and_deterministic(sampled, sample_points):
    contexts, _, strata = sampled
    regions = {c["region"] for c in contexts}
    assert len(regions) >= 4, regions
    for stratum in STRATA:
        assert strata.filter(pl.col("stratum") == stratum)["contexts"].sum() == len(contexts)
    again, _, _ = sample_contexts(sample_points, {}, PARAMS, FactsParams(), count_tokens, progress=False)
    assert [c["text"] for c in again] == [c["text"] for c in contexts]


def test_every_context_has_facts_in_all_categories(sampled):
    contexts, _, _ = sampled
    for ctx in contexts:
        cats = {f["category"] for f in compute_facts(ctx, FactsParams())}
        assert {"vessel_profile", "kinematics", "traffic", "anomaly", "compliance"} <= cats


def test_round_robin_gives_every_stratum_a_turn():
    cells = pl.DataFrame(
        {
            "region": ["A"] * 10 + ["B"] * 2 + ["C"],
            "area": ["port area"] * 13,
            "time_of_day": ["night"] * 13,
            "dominant_type": ["cargo"] * 13,
            "density": ["low"] * 13,
        }
    )
    chosen = stratified_sample(cells, 6, seed=0)
    assert dict(chosen.group_by("region").len().iter_rows()) == {"A": 3, "B": 2, "C": 1}


@pytest.mark.parametrize(
    ("lat", "lon", "region"),
    [(29.7, -95.0, "Gulf of Mexico"), (40.6, -74.0, "East Coast"), (33.7, -118.2, "West Coast"),
     (41.7, -87.6, "Great Lakes"), (21.3, -157.9, "Hawaii"), (61.2, -149.9, "Alaska"), (18.4, -66.1, "Caribbean"),
     (38.6, -90.2, "Inland Rivers")],
)  # fmt: skip
def test_regions(lat, lon, region):
    assert pl.select(region_expr(pl.lit(lat), pl.lit(lon))).item() == region
