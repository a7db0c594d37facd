"""Revise: editor prompt, re-verification, the log, and the llm-package path against a scripted server."""

from __future__ import annotations

import json
import re

import pytest
from curate_testdata import facts_of, hand_context, pair

from maritime_slm.config import ModelEndpoint, load_params
from maritime_slm.curate.revise import (
    EditorRevision,
    edit_jobs,
    editor_messages,
    llm_editor,
    revise_pairs,
    run_revision,
)
from maritime_slm.curate.verify import verify_pairs
from maritime_slm.llm import Ledger, RequestCache
from maritime_slm.llm.testserver import ScriptedServer, json_reply, prompt_of


@pytest.fixture(scope="module")
def ctx():
    return hand_context()


@pytest.fixture(scope="module")
def world(ctx):
    return {ctx["context_id"]: facts_of(ctx)}, {ctx["context_id"]: ctx}


@pytest.fixture
def wrong_pairs(ctx, world):
    facts, contexts = world
    raw = [
        pair(key="kinematics.fastest_sog", final="14 kn", id="p-sog", answer="It makes 14 kn."),
        pair(key="traffic.total_vessels", final="4", id="p-count"),
        pair(key="kinematics.fastest_vessel", final="367000002", id="p-mmsi"),
        pair(key="traffic.total_vessels", final="3", id="p-ok"),  # correct: not sent
        pair(key="traffic.within:Atlantis", final="2", id="p-unanswerable"),  # no fact: not sent
    ]
    return verify_pairs(raw, facts, contexts)


def fixing_editor(jobs):
    """Fixes the first job, answers the second wrongly again, fails the third."""
    out = []
    for i, job in enumerate(jobs):
        if i == 0:
            out.append(EditorRevision(question=job.pair.question, reasoning="MMSI 367000001 reports 12.0 kn.",
                                      answer="The fastest vessel makes 12 knots.", final_answer="12 kn",
                                      change="replaced 14 kn by the reported 12 kn"))  # fmt: skip
        elif i == 1:
            out.append(EditorRevision(question=job.pair.question, reasoning="Counting rows.", answer="5 vessels.",
                                      final_answer="5", change="recounted"))  # fmt: skip
        else:
            out.append("invalid_json: no JSON object in the reply")
    return out


def test_only_incorrect_pairs_with_a_fact_are_revised(wrong_pairs, world):
    facts, contexts = world
    jobs = edit_jobs(wrong_pairs, facts, contexts)
    assert [j.pair.id for j in jobs] == ["p-sog", "p-count", "p-mmsi"]


def test_revisions_are_reverified_and_logged(wrong_pairs, world):
    facts, contexts = world
    result = revise_pairs(wrong_pairs, facts, contexts, fixing_editor)
    assert [p.id for p in result.kept] == ["p-sog-rev"]
    kept = result.kept[0]
    assert kept.revised_from == "p-sog" and kept.final_answer == "12 kn" and kept.teacher == "llm"
    assert kept.verification.status == "correct"
    log = {r["id"]: r for r in result.log}
    assert set(log) == {"p-sog", "p-count", "p-mmsi"}
    assert log["p-sog"]["kept"] and log["p-sog"]["error_type"] == "wrong_value"
    assert (
        log["p-sog"]["before"]["final_answer"] == "14 kn" and log["p-sog"]["after"]["final_answer"] == "12 kn"
    )
    assert not log["p-count"]["kept"] and log["p-count"]["after_error_type"] == "wrong_value"
    assert log["p-mmsi"]["after"] is None and log["p-mmsi"]["failure"].startswith("invalid_json")
    assert result.attempted == 3 and result.n_kept == 1
    json.dumps(result.log)  # the log is plain JSON


def test_editor_prompt_carries_error_detail_facts_and_context(wrong_pairs, world, ctx):
    facts, contexts = world
    job = edit_jobs(wrong_pairs, facts, contexts)[0]
    system, user = editor_messages(job)
    assert system["role"] == "system" and "smallest change" in system["content"]
    text = user["content"]
    assert "$" not in text  # every template field filled
    assert "wrong_value" in text and job.pair.verification.detail in text
    assert "kinematics.fastest_sog" in text and '"12.00 kn"' in text  # the fact and the expected form
    assert ctx["text"].splitlines()[3] in text  # the snapshot
    assert "It makes 14 kn." in text


def _scripted_revision(body):
    """The scripted editor: answers with the value the prompt shows as the expected form."""
    prompt = prompt_of(body)
    final = re.search(r'in the form .*?like "([^"]+)"', prompt).group(1)
    question = re.search(r"- question: (.*)", prompt).group(1)
    return json_reply({"question": question, "reasoning": f"The facts give {final}.",
                       "answer": f"It is {final}.", "final_answer": final, "change": "used the computed value"})  # fmt: skip


def _endpoint(server: ScriptedServer) -> ModelEndpoint:
    return ModelEndpoint(name="editor", model="scripted-editor", base_url=server.base_url, timeout_s=5.0,
                         max_retries=0, concurrency=2, response_format="json_schema")  # fmt: skip


def test_llm_editor_through_the_llm_package_is_cached(wrong_pairs, world, tmp_path):
    facts, contexts = world
    with ScriptedServer(default=_scripted_revision) as server:
        cache = RequestCache(tmp_path / "cache.sqlite")
        with Ledger(tmp_path / "curate") as ledger:
            editor = llm_editor(_endpoint(server), cache=cache, ledger=ledger, budget=None, progress=False)
            first = revise_pairs(wrong_pairs, facts, contexts, editor)
            calls = server.count()
            again = revise_pairs(wrong_pairs, facts, contexts, editor)
        assert calls == 3 and server.count() == 3  # the second pass came from the cache
    assert [p.id for p in first.kept] == ["p-sog-rev", "p-count-rev", "p-mmsi-rev"]
    assert [p.final_answer for p in again.kept] == [p.final_answer for p in first.kept]
    assert (tmp_path / "curate" / "calls.jsonl").read_text().count('"cache_hit"') == 3


def test_run_revision_with_params_editor_writes_ledger(wrong_pairs, world, tmp_path):
    facts, contexts = world
    stage, llm = tmp_path / "stage", tmp_path / "llm"
    stage.mkdir()
    with ScriptedServer(default=_scripted_revision) as server:
        params = load_params("smoke", ["curate.max_revisions=null"])
        params.curate.editor = _endpoint(server)
        result = run_revision(wrong_pairs, facts, contexts, params, stage, llm, progress=False)
        assert result.n_kept == 3 and result.skipped_reason is None
        params.curate.max_revisions = 2
        capped = run_revision(wrong_pairs, facts, contexts, params, stage, llm, progress=False)
    assert capped.attempted == 2 and capped.n_kept == 2
    assert (stage / "ledger.csv").is_file() and (stage / "calls.jsonl").is_file()
    assert (llm / "cache.sqlite").is_file()
    params.curate.revise = False
    assert (
        run_revision(wrong_pairs, facts, contexts, params, stage, llm).skipped_reason
        == "curate.revise is false"
    )
