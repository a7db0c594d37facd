"""The verifier on hand-made cases: surface forms that must pass, errors that must be caught and named."""

from __future__ import annotations

import pytest
from curate_testdata import facts_of, hand_context, pair, rules_for
from hypothesis import given, settings
from hypothesis import strategies as st

from maritime_slm.curate.verify import (
    ERROR_TYPES,
    check_final_answer,
    convert,
    quantities,
    verify,
)


@pytest.fixture(scope="module")
def ctx():
    return hand_context()


@pytest.fixture(scope="module")
def facts(ctx):
    return facts_of(ctx)


def check(ctx, facts, key, final, **kw):
    return verify(pair(key=key, final=final, **kw), facts, ctx)


def test_rules_teacher_pairs_all_verify(ctx, facts):
    pairs = rules_for(ctx, n=60)
    assert len(pairs) > 30
    results = [verify(p, facts, ctx) for p in pairs]
    assert [r.status for r in results] == ["correct"] * len(pairs), [
        (p.facts_ref, p.final_answer, r.detail)
        for p, r in zip(pairs, results, strict=True)
        if r.status != "correct"
    ]


@pytest.mark.parametrize(
    "key, final",
    [
        ("kinematics.distance:367000001", "5.25 nm"),
        ("kinematics.distance:367000001", "5.25 nautical miles"),
        ("kinematics.distance:367000001", "9.72 km"),  # 5.25 nm = 9.723 km
        ("kinematics.distance:367000001", "9,723 m"),  # thousands separator
        ("kinematics.distance:367000001", "about 6.04 mi"),
        ("kinematics.distance:367000001", "MMSI 367000001 travelled 5.3 nm between 00:00 and 00:10 UTC."),
        ("kinematics.distance:367000001", "5.25 nm (9.72 km)"),
        ("kinematics.distance:367000001", "5.25"),  # bare number: read in the fact's unit
        ("kinematics.fastest_sog", "12 kn"),
        ("kinematics.fastest_sog", "12 knots"),
        ("kinematics.fastest_sog", "12.0 kts"),
        ("kinematics.fastest_sog", "22.2 km/h"),
        ("kinematics.fastest_sog", "6.17 m/s"),
        ("kinematics.fastest_sog", "13.8 mph"),
        ("collision_risk.min_cpa_tcpa", "18.5 min"),
        ("collision_risk.min_cpa_tcpa", "1,112 s"),
        ("collision_risk.min_cpa_tcpa", "0.31 h"),
        ("kinematics.eta_min:367000002:Houston", "1 h 35 min"),  # 95 min vs 94.5 +- 4.7
        ("kinematics.eta_min:367000002:Houston", "1 hour and 34 minutes"),
        ("vessel_profile.longest_length", "250 m"),
        ("vessel_profile.longest_length", "820 ft"),
        ("traffic.total_vessels", "3"),
        ("traffic.total_vessels", "three"),
        ("traffic.total_vessels", "3 vessels"),
        ("traffic.within:Houston", "1 vessel within 5 nm of Houston"),
        ("anomaly.unknown_flag_count", "none"),
        ("anomaly.unknown_flag_count", "0"),
        ("kinematics.fastest_vessel", "367000001"),
        ("kinematics.fastest_vessel", "The fastest vessel is MMSI 367000001 (ALPHA) at 12 kn."),
        ("kinematics.fastest_vessel", "ALPHA"),  # a name that names exactly one vessel
        ("collision_risk.min_cpa_pair", "367000001 and 367000002"),
        ("collision_risk.min_cpa_pair", "367000002, 367000001"),
        ("collision_risk.encounter_type", "head-on"),
        ("collision_risk.encounter_type", "Head on"),
        ("collision_risk.encounter_type", "head_on"),
        ("collision_risk.encounter_type", "a head-on situation"),
        ("collision_risk.give_way", "both"),
        ("anomaly.jump_vessel", "none"),
        ("anomaly.jump_vessel", "No vessel"),
        ("vessel_profile.type_group:538000003", "pleasure_sailing"),
        ("vessel_profile.type_group:538000003", "Pleasure craft / sailing"),
        ("vessel_profile.flag:367000001", "United States"),
        ("vessel_profile.flag:367000001", "USA"),
        ("vessel_profile.flag:367000001", "U.S."),
        ("vessel_profile.flag:538000003", "the Marshall Islands"),
    ],
)
def test_correct_surface_forms(ctx, facts, key, final):
    result = check(ctx, facts, key, final)
    assert result.status == "correct", result


@pytest.mark.parametrize(
    "key, final, error_type",
    [
        ("kinematics.distance:367000001", "6.1 nm", "wrong_value"),
        ("kinematics.distance:367000001", "5.25 km", "wrong_unit"),  # right number, wrong unit
        ("kinematics.distance:367000001", "5.25 min", "wrong_unit"),  # another dimension
        ("kinematics.distance:367000001", "4-6 nm", "format_error"),
        ("kinematics.distance:367000001", "5.25 nm or 6 nm", "format_error"),
        ("kinematics.distance:367000001", "5.25 nm (12 km)", "wrong_value"),  # renderings disagree
        ("kinematics.distance:367000001", "unknown", "format_error"),
        ("kinematics.fastest_sog", "12.5 knots", "wrong_value"),
        ("kinematics.fastest_sog", "12 km/h", "wrong_unit"),
        ("traffic.total_vessels", "4", "wrong_value"),
        ("traffic.total_vessels", "four", "wrong_value"),
        ("traffic.total_vessels", "3 or 4", "format_error"),
        ("kinematics.fastest_vessel", "367000002", "wrong_entity"),
        ("kinematics.fastest_vessel", "367009999", "hallucinated_entity"),
        ("kinematics.fastest_vessel", "367000001 or 367000002", "format_error"),
        ("kinematics.fastest_vessel", "none", "wrong_entity"),
        ("kinematics.fastest_vessel", "3670000", "truncated"),
        ("collision_risk.min_cpa_pair", "367000001 and", "truncated"),
        ("collision_risk.min_cpa_pair", "367000001 and 538000003", "wrong_entity"),
        ("collision_risk.encounter_type", "crossing", "wrong_value"),
        ("anomaly.jump_vessel", "367000001", "wrong_entity"),
        ("vessel_profile.type_group:367000001", "tanker", "wrong_value"),
        ("vessel_profile.flag:538000003", "United States", "wrong_entity"),
        ("vessel_profile.flag:538000003", "Panama", "wrong_entity"),
        ("traffic.total_vessels", "", "format_error"),
    ],
)
def test_errors_are_caught_and_named(ctx, facts, key, final, error_type):
    result = check(ctx, facts, key, final)
    assert result.status == "incorrect"
    assert result.error_type == error_type, result
    assert result.detail


def test_unknown_fact_key_is_unanswerable(ctx, facts):
    result = check(ctx, facts, "traffic.within:Miami", "2")
    assert (result.status, result.error_type) == ("unverifiable", "unanswerable_question")
    assert "traffic.within:Miami" in result.detail
    result = verify(pair(final="3").model_copy(update={"facts_ref": []}), facts, ctx)
    assert result.error_type == "unanswerable_question"


def test_missing_fact_sheet(ctx):
    result = verify(pair(final="3"), None, ctx)
    assert (result.status, result.error_type) == ("unverifiable", "missing_context")


def test_hallucinated_mmsi_in_reasoning(ctx, facts):
    result = check(
        ctx,
        facts,
        "traffic.total_vessels",
        "3",
        reasoning="MMSIs 367000001, 367000002 and 123456789 are listed.",
    )
    assert (result.status, result.error_type) == ("incorrect", "hallucinated_entity")
    assert "123456789" in result.detail


def test_answer_contradicting_final_answer(ctx, facts):
    result = check(
        ctx, facts, "kinematics.fastest_sog", "12 kn", answer="The fastest vessel makes 14.5 knots."
    )
    assert (result.status, result.error_type) == ("incorrect", "contradicts_reasoning")
    ok = check(
        ctx, facts, "kinematics.fastest_sog", "12 kn", answer="MMSI 367000001 is fastest at 12.0 knots."
    )
    assert ok.status == "correct"
    result = check(ctx, facts, "kinematics.fastest_vessel", "367000001", answer="It is MMSI 367000002.")
    assert result.error_type == "contradicts_reasoning"
    result = check(
        ctx, facts, "collision_risk.encounter_type", "head-on", answer="This is a crossing situation."
    )
    assert result.error_type == "contradicts_reasoning"
    result = check(ctx, facts, "traffic.total_vessels", "3", answer="There are 4 vessels in the snapshot.")
    assert result.error_type == "contradicts_reasoning"


def test_truncated_reasoning(ctx, facts):
    result = check(
        ctx, facts, "traffic.total_vessels", "3", reasoning="The vessel table lists three MMSIs and"
    )
    assert (result.status, result.error_type) == ("incorrect", "truncated")
    assert check(ctx, facts, "traffic.total_vessels", "3", answer="There are 3...").error_type == "truncated"


def test_mmsi_inside_a_sentence_and_numbers_with_separators():
    fact = {"key": "k", "kind": "number", "value": 1234.5, "unit": "nm", "tolerance": 0.1}
    assert check_final_answer("1,234.5 nm", fact).status == "correct"
    assert check_final_answer("1234.5 nm", fact).status == "correct"
    assert check_final_answer("The distance is 1,234.5 nautical miles.", fact).status == "correct"
    assert check_final_answer("1,243.5 nm", fact).error_type == "wrong_value"
    mmsi_fact = {"key": "m", "kind": "mmsi", "value": 367001234}
    assert check_final_answer("It is vessel 367001234, a tug.", mmsi_fact).status == "correct"
    assert check_final_answer("It is vessel 367001235, a tug.", mmsi_fact).error_type == "wrong_entity"


def test_issue_examples_units():
    nm = {"key": "d", "kind": "number", "value": 6.1, "unit": "nm", "tolerance": 0.1}
    assert check_final_answer("11.3 km", nm).status == "correct"  # 6.1 nm = 11.297 km
    assert check_final_answer("6.1 km", nm).error_type == "wrong_unit"
    kn = {"key": "s", "kind": "number", "value": 12.0, "unit": "kn", "tolerance": 0.1}
    assert check_final_answer("12 kn", kn).status == check_final_answer("12 knots", kn).status == "correct"
    assert convert(1.0, "nm", "km") == pytest.approx(1.852)
    assert convert(60, "min", "h") == pytest.approx(1.0)
    with pytest.raises(ValueError):
        convert(1.0, "nm", "kn")


def test_quantities_skip_times_dates_and_mmsis():
    qs = quantities("MMSI 367001234 at 12:30:00 on 2022-01-03 was 4.2 nm off, 1 h 20 min out")
    assert [(q.value, q.unit) for q in qs] == [(4.2, "nm"), (pytest.approx(4 / 3), "h")]


def test_every_error_type_is_documented():
    import maritime_slm.curate.verify as module

    for error_type in ERROR_TYPES:
        assert f"`{error_type}`" in module.__doc__


# ------------------------------------------------------------------ property tests
UNIT_RENDERINGS = {
    "nm": [("nm", 1.0), ("nautical miles", 1.0), ("km", 1.852), ("m", 1852.0), ("ft", 1852 / 0.3048)],
    "kn": [("kn", 1.0), ("knots", 1.0), ("kts", 1.0), ("km/h", 1.852), ("m/s", 1852 / 3600)],
    "min": [("min", 1.0), ("minutes", 1.0), ("s", 60.0), ("h", 1 / 60)],
}
WRAPS = [
    "{x}",
    "{x}.",
    "The answer is {x}.",
    "It is about {x} in total",
    "approximately {x} (computed from the reports)",
]


def render(value: float, factor: float, unit: str, thousands: bool, wrap: str) -> str:
    shown = value * factor
    text = f"{shown:,.6f}" if thousands else f"{shown:.6f}"
    return wrap.format(x=f"{text} {unit}")


@settings(max_examples=150, deadline=None)
@given(
    base_unit=st.sampled_from(sorted(UNIT_RENDERINGS)),
    value=st.floats(min_value=0.5, max_value=5000, allow_nan=False),
    rel_tol=st.floats(min_value=0.01, max_value=0.1),
    choice=st.integers(min_value=0, max_value=10),
    thousands=st.booleans(),
    wrap=st.sampled_from(WRAPS),
    perturb=st.floats(min_value=1.5, max_value=20),
    sign=st.sampled_from([-1, 1]),
)
def test_property_surface_forms_verify_and_perturbations_fail(
    base_unit, value, rel_tol, choice, thousands, wrap, perturb, sign
):
    value = round(value, 3)
    tol = round(value * rel_tol, 3)
    fact = {"key": "x", "kind": "number", "value": value, "unit": base_unit, "tolerance": tol}
    unit, factor = UNIT_RENDERINGS[base_unit][choice % len(UNIT_RENDERINGS[base_unit])]
    good = render(value, factor, unit, thousands, wrap)
    assert check_final_answer(good, fact).status == "correct", (good, fact)
    wrong = value + sign * perturb * tol
    if wrong <= 0:
        wrong = value + perturb * tol
    bad = render(wrong, factor, unit, thousands, wrap)
    result = check_final_answer(bad, fact)
    assert result.status == "incorrect", (bad, fact)
    assert result.error_type in {"wrong_value", "wrong_unit"}


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(min_value=0, max_value=99), words=st.booleans(), other=st.integers(min_value=1, max_value=5)
)
def test_property_counts(n, words, other):
    from maritime_slm.curate.verify import _SMALL, _TENS

    def spell(k: int) -> str:
        if k < 20:
            return _SMALL[k]
        tens = next(w for w, v in _TENS.items() if v == k - k % 10)
        return tens if k % 10 == 0 else f"{tens}-{_SMALL[k % 10]}"

    fact = {"key": "c", "kind": "count", "value": n}
    assert check_final_answer(spell(n) if words else f"{n} vessels", fact).status == "correct"
    assert check_final_answer(str(n + other), fact).error_type == "wrong_value"


def test_answer_listing_other_labels_beside_the_right_one_is_consistent():
    ctx = hand_context()
    fact = {"key": "traffic.most_common_type", "category": "traffic", "kind": "label", "value": "other",
            "unit": None, "tolerance": 0.0, "subject": None, "label": "most common type group", "support": {}}  # fmt: skip
    answer = "Counting type groups (cargo 1, other 2, passenger 1), the most common is other."
    p = pair(key="traffic.most_common_type", final="other", answer=answer)
    assert verify(p, [fact], ctx).status == "correct"
    wrong = pair(key="traffic.most_common_type", final="other", answer="The most common group is cargo.")
    assert verify(wrong, [fact], ctx).error_type == "contradicts_reasoning"
