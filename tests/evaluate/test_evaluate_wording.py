"""Robustness to wording on the same facts: each held-out-worded test item gets a seen-worded twin, and the paired
gap between them has Newcombe's interval and the exact McNemar test."""

from __future__ import annotations

import json

import polars as pl
import pytest
from evaluate_testdata import fact_of, make_run

from maritime_slm.curate.export import QUESTION_PREFIX
from maritime_slm.evaluate.items import load_items
from maritime_slm.evaluate.stats import paired_difference
from maritime_slm.evaluate.wording import TWIN_SUFFIX, paired_wording_table, wording_twins
from maritime_slm.facts.build import load_facts
from maritime_slm.facts.factsheet import family
from maritime_slm.generate.rules import _fields, templates


def _outcomes(both: int, only_a: int, only_b: int, neither: int) -> tuple[list[bool], list[bool]]:
    a = [True] * both + [True] * only_a + [False] * only_b + [False] * neither
    b = [True] * both + [False] * only_a + [True] * only_b + [False] * neither
    return a, b


def test_paired_difference_matches_newcombes_formula_and_its_invariants():
    # values of the square-and-add formula as ocbe-uio/contingencytables computes it (Fagerland et al., ch. 8)
    d = paired_difference(*_outcomes(1, 1, 7, 12))
    assert (d.n, d.difference) == (21, pytest.approx(-6 / 21))
    assert (d.ci_low, d.ci_high) == (pytest.approx(-0.50692, abs=1e-5), pytest.approx(-0.02556, abs=1e-5))
    d = paired_difference(*_outcomes(59, 6, 16, 80))
    assert (d.ci_low, d.ci_high) == (pytest.approx(-0.11862, abs=1e-5), pytest.approx(-0.00463, abs=1e-5))
    for counts in [(12, 9, 2, 21), (0, 0, 0, 10), (10, 0, 0, 0), (0, 5, 0, 0), (3, 0, 4, 1)]:
        a, b = _outcomes(*counts)
        d, swapped = paired_difference(a, b), paired_difference(b, a)
        assert -1 <= d.ci_low <= d.difference <= d.ci_high <= 1, counts
        assert (swapped.ci_low, swapped.ci_high) == (pytest.approx(-d.ci_high), pytest.approx(-d.ci_low))
    wide, narrow = paired_difference(*_outcomes(2, 2, 1, 5)), paired_difference(*_outcomes(20, 20, 10, 50))
    assert narrow.ci_high - narrow.ci_low < wide.ci_high - wide.ci_low  # more pairs, a narrower interval
    with pytest.raises(ValueError, match="differ in length"):
        paired_difference([True], [True, False])


def test_every_unseen_item_gets_a_twin_that_differs_only_in_a_seen_wording(tmp_path):
    run = make_run(tmp_path, n_contexts=2)
    test_file = run["curate"] / "dataset" / "test.jsonl"
    rows = [{**r, "phrasing": "unseen" if i % 3 == 0 else "seen"} for i, r in enumerate(run["rows"])]
    test_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    items = load_items(run["curate"])
    facts = load_facts(run["generate"] / "facts.jsonl")
    twins = wording_twins(items, facts)
    unseen = [it for it in items if it.phrasing == "unseen"]
    assert [t.id for t in twins] == [it.id + TWIN_SUFFIX for it in unseen] and twins
    rows_by_id = {r["id"]: r for r in rows}
    for it, twin in zip(unseen, twins, strict=True):
        fact = fact_of(run, rows_by_id[it.id])
        seen = {q.format_map(_fields(fact)) for q in templates()[family(fact["key"])]["questions"]}
        assert twin.question in seen and twin.phrasing == "seen"
        assert (twin.reference, twin.final_answer, twin.facts_ref) == (
            it.reference,
            it.final_answer,
            it.facts_ref,
        )
        assert twin.prompt[:-1] == it.prompt[:-1]
        context = it.prompt[-1]["content"].removesuffix(QUESTION_PREFIX + it.question)
        assert twin.prompt[-1]["content"] == context + QUESTION_PREFIX + twin.question
    assert wording_twins(items, facts) == twins  # chosen by the item alone: the same twins every run
    assert wording_twins(items, {}) == []  # no fact sheet, no twin


def test_paired_wording_table_pairs_each_item_with_its_twin():
    outcome = {
        "a": (True, True),
        "b": (False, True),
        "c": (False, True),
        "d": (False, False),
        "e": (True, False),
    }
    rows = []
    for item, (unseen_ok, seen_ok) in outcome.items():
        rows += [{"model": "m", "item_id": item, "grounded": unseen_ok},
                 {"model": "m", "item_id": item + TWIN_SUFFIX, "grounded": seen_ok}]  # fmt: skip
    rows.append({"model": "m", "item_id": "seen-only", "grounded": True})  # no twin: not a pair
    rows.append({"model": "other", "item_id": "a", "grounded": True})  # no twins answered: no row
    table = paired_wording_table(pl.DataFrame(rows), ["m", "other"])
    assert table["model"].to_list() == ["m"]
    r = table.row(0, named=True)
    assert (r["n_pairs"], r["seen_correct"], r["unseen_correct"]) == (5, 3, 2)
    assert (r["only_seen_correct"], r["only_unseen_correct"]) == (2, 1)
    assert r["gap"] == pytest.approx(0.2) and r["gap_ci_low"] < 0.2 < r["gap_ci_high"]
    assert r["mcnemar_p"] == pytest.approx(1.0)
