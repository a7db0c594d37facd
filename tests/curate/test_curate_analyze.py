"""Error rates and Wilson intervals."""

from __future__ import annotations

import pytest
from curate_testdata import pair

from maritime_slm.curate.analyze import error_rates, teacher_summary
from maritime_slm.generate.records import Verification
from maritime_slm.stats import wilson_ci


def _verified(teacher, category_key, status, error_type=None, i=0):
    p = pair(key=category_key, final="3", teacher=teacher, id=f"{teacher}-{category_key}-{i}")
    return p.model_copy(
        update={"verification": Verification(status=status, error_type=error_type, detail="x")}
    )


@pytest.fixture
def pairs():
    out = []
    # teacher "a": 20 traffic pairs, 8 wrong_value, 2 unanswerable
    for i in range(20):
        if i < 8:
            out.append(_verified("a", "traffic.total_vessels", "incorrect", "wrong_value", i))
        elif i < 10:
            out.append(_verified("a", "traffic.total_vessels", "unverifiable", "unanswerable_question", i))
        else:
            out.append(_verified("a", "traffic.total_vessels", "correct", None, i))
    # teacher "b": 5 kinematics pairs all correct, one with a missing fact sheet (not counted)
    out += [_verified("b", "kinematics.fastest_sog", "correct", None, i) for i in range(5)]
    out.append(_verified("b", "kinematics.fastest_sog", "unverifiable", "missing_context", 9))
    return out


def test_error_rates_by_teacher_category_and_type(pairs):
    df = error_rates(pairs)
    row = df.filter(
        (df["teacher"] == "a") & (df["category"] == "traffic") & (df["error_type"] == "wrong_value")
    )
    assert row.height == 1
    r = row.row(0, named=True)
    assert (r["errors"], r["pairs"], r["rate"]) == (8, 20, 0.4)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx(wilson_ci(8, 20))
    anyerr = df.filter((df["teacher"] == "a") & (df["category"] == "all") & (df["error_type"] == "any_error"))
    assert anyerr["errors"].item() == 10
    b = df.filter((df["teacher"] == "b") & (df["category"] == "all"))
    assert b["error_type"].to_list() == ["any_error"] and b["pairs"].item() == 5  # missing_context left out
    total = df.filter(
        (df["teacher"] == "all") & (df["category"] == "all") & (df["error_type"] == "any_error")
    )
    assert (total["errors"].item(), total["pairs"].item()) == (10, 25)


def test_teacher_summary_before_and_after_revision(pairs):
    revisions = [
        {"id": "a-traffic.total_vessels-0", "teacher": "a", "kept": True, "attempted": True},
        {"id": "a-traffic.total_vessels-1", "teacher": "a", "kept": True, "attempted": True},
        {"id": "a-traffic.total_vessels-2", "teacher": "a", "kept": False, "attempted": True},
    ]
    df = teacher_summary(pairs, revisions)
    a = df.filter(df["teacher"] == "a").row(0, named=True)
    assert (a["pairs"], a["correct"], a["incorrect"], a["unverifiable"]) == (20, 10, 8, 2)
    assert a["verified_rate"] == 0.5 and a["error_rate"] == 0.5
    assert (a["revision_attempted"], a["revision_kept"], a["correct_after"]) == (3, 2, 12)
    assert (a["after_ci_low"], a["after_ci_high"]) == pytest.approx(wilson_ci(12, 20))
    b = df.filter(df["teacher"] == "b").row(0, named=True)
    assert (b["pairs"], b["missing_context"], b["verified_rate"]) == (5, 1, 1.0)
    everyone = df.filter(df["teacher"] == "all").row(0, named=True)
    assert (everyone["pairs"], everyone["correct_after"]) == (25, 17)
