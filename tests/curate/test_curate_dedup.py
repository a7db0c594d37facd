"""Dedup: what counts as a duplicate of a QA pair about an AIS snapshot."""

from __future__ import annotations

from curate_testdata import hand_context, pair

from maritime_slm.curate.dedup import dedup_pairs, entities


def ids(result):
    return [p.id for p in result.kept]


def test_exact_duplicate_in_the_same_context_is_dropped():
    a = pair(id="a", question="How many vessels are in this snapshot?")
    b = pair(id="b", question="How many vessels are in this snapshot ?")  # same after normalisation
    result = dedup_pairs([a, b])
    assert ids(result) == ["a"]
    assert result.dropped[0]["reason"] == "exact_same_context"
    assert result.dropped[0]["kept_id"] == "a"


def test_same_question_in_another_context_is_not_a_duplicate():
    a = pair("ctx-1", id="a")
    b = pair("ctx-2", id="b")
    result = dedup_pairs([a, b], {"ctx-1": {"text": "one snapshot"}, "ctx-2": {"text": "another snapshot"}})
    assert ids(result) == ["a", "b"]
    assert result.same_qa_across_contexts == 1  # reported as a template repeat, kept


def test_identical_snapshots_under_two_ids_are_one_context():
    text = hand_context()["text"]
    a, b = pair("ctx-1", id="a"), pair("ctx-2", id="b")
    result = dedup_pairs([a, b], {"ctx-1": {"text": text}, "ctx-2": {"text": text}})
    assert ids(result) == ["a"] and result.by_reason == {"exact_same_context": 1}


def test_near_duplicates_need_same_fact_key_and_entities():
    q = "What was the average speed of MMSI 367000001 over its reports in this snapshot, in knots?"
    near = "What was the average speed of MMSI 367000001 over its reports in the snapshot, in knots?"
    other_vessel = q.replace("367000001", "367000002")
    key = "kinematics.avg_speed:367000001"
    pairs = [
        pair(id="a", key=key, final="31.5 kn", question=q),
        pair(id="b", key=key, final="31.5 kn", question=near),
        pair(id="c", key="kinematics.avg_speed:367000002", final="3 kn", question=other_vessel),
        pair(id="d", key="traffic.moving_count", final="2", question="How many vessels are moving?"),
        pair(
            id="e", key="kinematics.stationary_count", final="1", question="How many vessels are not moving?"
        ),
    ]
    result = dedup_pairs(pairs, threshold=0.9)
    assert ids(result) == ["a", "c", "d", "e"]
    assert result.dropped == [
        {"id": "b", "kept_id": "a", "reason": "near_same_context", "similarity": result.dropped[0]["similarity"],
         "context_id": "ctx-test", "same_answer": True}
    ]  # fmt: skip
    assert 0.9 <= result.dropped[0]["similarity"] < 1.0
    # a stricter threshold keeps the paraphrase
    assert ids(dedup_pairs(pairs, threshold=0.999)) == ["a", "b", "c", "d", "e"]


def test_an_llm_pair_is_kept_over_a_rules_pair_and_input_order_is_kept():
    r = pair(id="rules-1", teacher="rules")
    llm = pair(id="llm-1", teacher="gpt")
    other = pair(id="x", key="traffic.moving_count", final="2", question="How many vessels are moving?")
    result = dedup_pairs([r, other, llm])
    assert ids(result) == ["x", "llm-1"]


def test_entities():
    assert entities("How many vessels are within 5 nm of Houston? Give a count.") == {"5", "houston"}
    assert entities("What flag does MMSI 367000001 fly?") == {"367000001"}
