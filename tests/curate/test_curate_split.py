"""Split: leakage-free groups of contexts, stratification, determinism, decontamination."""

from __future__ import annotations

import random
from collections import Counter
from datetime import timedelta

import pytest
from curate_testdata import T0, pair, random_context

from maritime_slm.config import SplitParams
from maritime_slm.curate.split import (
    context_components,
    context_mmsis,
    decontamination,
    split_pairs,
    windows_overlap,
)

CATS = ["vessel_profile", "kinematics", "traffic", "anomaly", "collision_risk", "compliance"]
KEY = {"vessel_profile": "vessel_profile.class_b_count", "kinematics": "kinematics.stationary_count",
       "traffic": "traffic.total_vessels", "anomaly": "anomaly.gap_count", "collision_risk": "collision_risk.close_pairs",
       "compliance": "compliance.moored_moving_count"}  # fmt: skip


def tiny(cid, start_min, length_min, mmsis):
    return {"context_id": cid, "window_start": (T0 + timedelta(minutes=start_min)).isoformat(),
            "window_end": (T0 + timedelta(minutes=start_min + length_min)).isoformat(),
            "vessels": [{"mmsi": m} for m in mmsis], "reports": []}  # fmt: skip


def test_components_join_overlapping_vessel_windows_only():
    contexts = {
        "A": tiny("A", 0, 20, [1, 5]),
        "B": tiny("B", 10, 20, [1]),  # overlaps A through vessel 1
        "C": tiny("C", 25, 20, [1, 7]),  # overlaps B (not A): joins transitively
        "D": tiny("D", 45, 20, [1]),  # touches C's end: half-open windows do not overlap
        "E": tiny("E", 0, 20, [2]),  # same time as A, other vessel
        "F": tiny("F", 100, 20, [7, 5]),  # same vessels as A and C, but later
    }
    comp = context_components(contexts)
    assert comp["A"] == comp["B"] == comp["C"] == "A"
    assert len({comp["A"], comp["D"], comp["E"], comp["F"]}) == 4


@pytest.fixture(scope="module")
def synthetic():
    """80 contexts in 20-minute windows (some windows shifted by 10 min), vessels drawn from a pool of 60 so many
    recur at overlapping and at separate times; 1-3 pairs of each category per context."""
    rng = random.Random(7)
    contexts, pairs = {}, []
    for i in range(80):
        start = T0 + timedelta(minutes=20 * rng.randint(0, 30) + rng.choice([0, 0, 10]))
        cid = f"c{i:03d}"
        contexts[cid] = random_context(cid, rng.sample(range(367_000_000, 367_000_060), 4), start, rng)
        for cat in CATS:
            for j in range(rng.randint(1, 3)):
                pairs.append(pair(cid, KEY[cat], "1", id=f"{cid}-{cat}-{j}", category=cat,
                                  question=f"Question {j} about {cat} in {cid}?"))  # fmt: skip
    return contexts, pairs


def test_no_context_or_vessel_window_in_two_splits(synthetic):
    contexts, pairs = synthetic
    result = split_pairs(pairs, contexts, SplitParams(train=0.7, val=0.15, test=0.15, seed=1))
    split_of = {}
    for p in result.pairs:
        assert split_of.setdefault(p.context_id, p.split) == p.split
    clashes = 0
    for a in split_of:
        for b in split_of:
            if (
                a < b
                and split_of[a] != split_of[b]
                and context_mmsis(contexts[a]) & context_mmsis(contexts[b])
            ):
                clashes += windows_overlap(contexts[a], contexts[b])
    assert clashes == 0
    assert result.report["leakage"] == {"contexts_in_two_splits": 0, "vessel_window_across_splits": 0}
    # the relation is not trivial: some vessels recur at overlapping times (grouped) and at others (split apart)
    assert result.report["components"] < len(contexts)
    assert len(set(split_of.values())) == 3


def test_stratification_roughly_holds(synthetic):
    contexts, pairs = synthetic
    params = SplitParams(train=0.7, val=0.15, test=0.15, seed=0)
    result = split_pairs(pairs, contexts, params)
    sizes = result.report["sizes"]
    n = sum(sizes.values())
    for split, frac in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
        assert abs(sizes[split] / n - frac) < 0.05, sizes
    by = Counter((p.category, p.split) for p in result.pairs)
    for cat in CATS:
        total = sum(by[(cat, s)] for s in ("train", "val", "test"))
        for split, frac in (("train", 0.7), ("val", 0.15), ("test", 0.15)):
            assert abs(by[(cat, split)] / total - frac) < 0.1, (cat, split, by)


def test_split_is_deterministic_for_a_seed(synthetic):
    contexts, pairs = synthetic
    params = SplitParams(train=0.7, val=0.15, test=0.15, seed=3)
    first = split_pairs(pairs, contexts, params).context_split
    assert split_pairs(list(reversed(pairs)), contexts, params).context_split == first
    others = [
        split_pairs(pairs, contexts, params.model_copy(update={"seed": s})).context_split for s in range(4, 9)
    ]
    assert any(o != first for o in others)


def test_decontamination_flags_shared_data_not_boilerplate():
    rng = random.Random(0)
    contexts = {f"c{i}": random_context(f"c{i}", [367_200_000 + 10 * i + k for k in range(3)],
                                        T0 + timedelta(hours=i), rng) for i in range(12)}  # fmt: skip
    pairs = [pair(cid, id=f"{cid}-q", question=f"How many vessels are in snapshot number {i}?", split="train")
             for i, cid in enumerate(contexts)]  # fmt: skip
    pairs[0] = pairs[0].model_copy(update={"split": "test"})
    pairs[1] = pairs[1].model_copy(update={"split": "test"})
    clean = decontamination(pairs, contexts)
    assert clean["test_items"] == 2 and clean["share_13gram"] == 0.0
    assert clean["share_13gram_any"] == 1.0  # the serialisation header is shared by every context
    assert 0 < clean["mean_overlap_13gram"] < 0.5
    # a train context that repeats a test snapshot's data (c0's whole text) is caught
    leaked = dict(contexts)
    leaked["c5"] = {**contexts["c5"], "text": contexts["c5"]["text"] + "\n" + contexts["c0"]["text"]}
    dirty = decontamination(pairs, leaked)
    assert dirty["share_13gram"] == 0.5 and dirty["max_overlap_13gram"] > 0.9


def test_held_out_wordings_reach_test_only(synthetic):
    """A pair worded with a held-out phrasing is dropped from train and val and kept in test."""
    contexts, pairs = synthetic
    worded = [
        p.model_copy(update={"phrasing": "unseen" if i % 3 == 0 else "seen"}) for i, p in enumerate(pairs)
    ]
    result = split_pairs(worded, contexts, SplitParams(train=0.7, val=0.15, test=0.15, seed=1))
    by_split = Counter((p.split, p.phrasing) for p in result.pairs)
    assert by_split[("train", "unseen")] == by_split[("val", "unseen")] == 0
    assert by_split[("test", "unseen")] > 0 and by_split[("train", "seen")] > 0
    unseen_test = sum(
        1 for p in worded if p.phrasing == "unseen" and result.context_split[p.context_id] == "test"
    )
    assert by_split[("test", "unseen")] == unseen_test == result.report["unseen_wording_in_test"]
    assert result.report["unseen_wording_dropped_from_train_val"] == len(worded) - len(result.pairs) > 0
