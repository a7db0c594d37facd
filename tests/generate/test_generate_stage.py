"""The multi-teacher run end to end against real servers: a scripted OpenAI-compatible API and llama.cpp."""

import json
import os
import signal
import subprocess
import sys
import time

import polars as pl
import pytest
from testkit import answer_first_intent, teacher_contexts

from maritime_slm.config import GenerateParams, ModelEndpoint
from maritime_slm.generate.run import generate_pairs
from maritime_slm.llm.testserver import ScriptedServer

FAKE_KEY = "test-key-" + "Kq9" * 12


def api_teacher(server: ScriptedServer, **kw) -> ModelEndpoint:
    spec = dict(name="api-teacher", model="gpt-4o", base_url=server.base_url, api_key_env="FAKE_TEACHER_KEY",
                response_format="json_schema", price_in_per_m=2.5, price_out_per_m=10.0, concurrency=4,
                max_retries=1, timeout_s=20)  # fmt: skip
    return ModelEndpoint(**{**spec, **kw})


@pytest.fixture(autouse=True)
def fake_key(monkeypatch):
    monkeypatch.setenv("FAKE_TEACHER_KEY", FAKE_KEY)


def test_rules_and_api_teacher_pairs_then_a_free_rerun(tmp_path):
    ctxs, facts = teacher_contexts(3)
    with ScriptedServer(default=answer_first_intent) as server:
        params = GenerateParams(teachers=[api_teacher(server)], pairs_per_context=6, budget_usd=1.0)
        first = generate_pairs(ctxs, facts, params, tmp_path / "stage1", tmp_path / "llm", seed=0)
        sent = server.count()
        second = generate_pairs(ctxs, facts, params, tmp_path / "stage2", tmp_path / "llm", seed=0)
        assert server.count() == sent, "the re-run sent requests again"
    assert sent == 3 * 6
    by_teacher = pl.DataFrame([p.model_dump() for p in first.pairs]).group_by("teacher").len()
    assert dict(by_teacher.iter_rows()) == {"rules": 18, "api-teacher": 18}
    offered = {f["key"] for f in facts["ctx-000"]}
    assert all(p.facts_ref[0] in offered for p in first.pairs)
    assert [p.model_dump() for p in second.pairs] == [p.model_dump() for p in first.pairs]
    ledger = pl.read_csv(tmp_path / "stage2" / "ledger.csv")
    assert ledger["requests"].sum() == 18 and ledger["cache_hits"].sum() == 18
    assert ledger["usd"].sum() > 0
    assert set(ledger["category"]) == {"vessel_profile", "kinematics", "traffic", "anomaly", "collision_risk",
                                       "compliance"}  # fmt: skip


def test_the_key_appears_in_no_output(tmp_path):
    ctxs, facts = teacher_contexts(1)
    with ScriptedServer(default=answer_first_intent) as server:
        params = GenerateParams(teachers=[api_teacher(server)], pairs_per_context=6, budget_usd=1.0)
        generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 4
    assert [p for p in files if FAKE_KEY.encode() in p.read_bytes()] == []


def test_budget_stops_cleanly_with_what_finished(tmp_path):
    ctxs, facts = teacher_contexts(4)
    with ScriptedServer(default=answer_first_intent) as server:
        params = GenerateParams(
            teachers=[api_teacher(server, concurrency=1)],
            pairs_per_context=6,
            budget_usd=0.05,
            refuse_over_budget=False,  # start although the preview's ceiling does not fit: the cap stops it
        )
        result = generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    assert result.stopped_by_budget
    ledger = pl.read_csv(tmp_path / "stage" / "ledger.csv")
    assert 0 < ledger["requests"].sum() < 24
    assert ledger["usd"].sum() <= 0.05
    assert len([p for p in result.pairs if p.teacher == "api-teacher"]) == ledger["requests"].sum()
    assert {f["failure"] for f in result.failures} == {"budget"}


def _teacher_rows(stage):
    ledger = pl.read_csv(stage / "ledger.csv").group_by("teacher").agg(pl.col("requests", "usd").sum())
    return {row["teacher"]: row for row in ledger.iter_rows(named=True)}


def test_each_teacher_spends_its_own_budget_line(tmp_path):
    ctxs, facts = teacher_contexts(3)
    with ScriptedServer(default=answer_first_intent) as server:
        params = GenerateParams(
            teachers=[api_teacher(server, name="first", concurrency=1, budget_usd=0.03),
                      api_teacher(server, name="second", model="gpt-4o-mini", concurrency=1)],
            pairs_per_context=6, budget_usd=1.0, refuse_over_budget=False,
        )  # fmt: skip
        result = generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
        sent = server.count()
        # a re-run starts each line from what that teacher already paid: the first one sends nothing more
        generate_pairs(ctxs, facts, params, tmp_path / "stage2", tmp_path / "llm", seed=0)
        assert server.count() == sent
    assert result.stopped_by_budget and "budget reached" in result.summaries["first"]
    rows = _teacher_rows(tmp_path / "stage")
    assert 0 < rows["first"]["requests"] < 18 and rows["first"]["usd"] <= 0.03
    assert rows["second"]["requests"] == 18  # the first teacher's stop did not stop the second
    assert len([p for p in result.pairs if p.teacher == "second"]) == 18
    assert {f["teacher"] for f in result.failures} == {"first"}


def test_the_stage_budget_still_caps_all_teachers_together(tmp_path):
    ctxs, facts = teacher_contexts(3)
    with ScriptedServer(default=answer_first_intent) as server:
        params = GenerateParams(
            teachers=[api_teacher(server, name="first", concurrency=1, budget_usd=0.03),
                      api_teacher(server, name="second", model="gpt-4o-mini", concurrency=1)],
            pairs_per_context=6, budget_usd=0.06, refuse_over_budget=False,
        )  # fmt: skip
        result = generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    rows = _teacher_rows(tmp_path / "stage")
    assert rows["first"]["usd"] <= 0.03 and 0 < rows["second"]["requests"] < 18
    assert rows["first"]["usd"] + rows["second"]["usd"] <= 0.06
    assert {f["failure"] for f in result.failures} == {"budget"}


CHILD = """
import json, sys
from maritime_slm.config import GenerateParams
from maritime_slm.generate.run import generate_pairs
from maritime_slm.jsonl import write_jsonl
from pathlib import Path
spec = json.loads(Path(sys.argv[1]).read_text())
out = Path(sys.argv[2])
result = generate_pairs(spec["contexts"], spec["facts"], GenerateParams.model_validate(spec["params"]),
                        out / "stage", out / "llm", seed=0)
write_jsonl(out / "pairs.jsonl", result.pairs)
"""


def test_killed_generation_resumes_without_paying_twice(tmp_path):
    ctxs, facts = teacher_contexts(5)
    with ScriptedServer(default=answer_first_intent, latency_s=0.3) as server:
        params = GenerateParams(
            teachers=[api_teacher(server, concurrency=2)], pairs_per_context=6, budget_usd=1.0
        )
        spec = tmp_path / "spec.json"
        spec.write_text(
            json.dumps({"contexts": ctxs, "facts": facts, "params": params.model_dump(mode="json")})
        )
        env = {**os.environ, "FAKE_TEACHER_KEY": FAKE_KEY}
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(spec), str(tmp_path)], env=env,
                                 start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.time() + 120
        while server.count() < 10:
            assert time.time() < deadline and child.poll() is None, "the child never got going"
            time.sleep(0.05)
        os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        sent_before = server.count()
        finished_before = sum(1 for s in server.seen if s.answered is not None)
        result = generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
        total = server.count()
    assert not (tmp_path / "pairs.jsonl").exists(), "the child was supposed to die before finishing"
    assert sent_before < 30
    # every prompt answered exactly once, except calls in flight at the kill (at most one per concurrency slot)
    repeated = total - 30
    assert 0 <= repeated <= sent_before - finished_before + 2
    assert max(server.counts().values()) <= 2
    assert len([p for p in result.pairs if p.teacher == "api-teacher"]) == 30
    ledger = pl.read_csv(tmp_path / "stage" / "ledger.csv")
    # the ledger holds every call whose reply reached the client; calls in flight at the kill never did
    in_flight_at_kill = sent_before - finished_before
    assert total - in_flight_at_kill - 2 <= ledger["requests"].sum() <= total


@pytest.mark.slow
def test_real_llama_cpp_teacher_writes_parsed_pairs(tmp_path):
    ctxs, facts = teacher_contexts(1)
    # concurrency 1: the llama.cpp server is single-slot, queued requests would spend their timeout waiting
    local = ModelEndpoint(name="local-smollm2", model="smollm2-135m-instruct", local=True,
                          response_format="json_object_schema", max_tokens=256, temperature=0.7, timeout_s=300,
                          concurrency=1)  # fmt: skip
    params = GenerateParams(teachers=[local], rules_teacher=False, pairs_per_context=6)
    result = generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    assert len(result.pairs) + len(result.failures) == 6
    assert len(result.pairs) >= 1, [f["detail"] for f in result.failures]
    assert all(p.teacher == "local-smollm2" and p.final_answer for p in result.pairs)
    ledger = pl.read_csv(tmp_path / "stage" / "ledger.csv")
    assert ledger["requests"].sum() >= 6 and ledger["input_tokens"].sum() > 0 and ledger["usd"].sum() == 0


def test_a_later_teachers_line_is_held_while_the_first_runs(tmp_path):
    """Issue 16: one budget spent by the teachers in order left the second nothing. Every line is made before
    the first teacher runs, and what a line has not spent is held for it."""
    ctxs, facts = teacher_contexts(3)
    with ScriptedServer(default=answer_first_intent) as server:
        params = GenerateParams(
            teachers=[api_teacher(server, name="first", concurrency=1),
                      api_teacher(server, name="second", model="gpt-4o-mini", concurrency=1, budget_usd=0.03)],
            pairs_per_context=6, budget_usd=0.06, refuse_over_budget=False,
        )  # fmt: skip
        result = generate_pairs(ctxs, facts, params, tmp_path / "stage", tmp_path / "llm", seed=0)
    rows = _teacher_rows(tmp_path / "stage")
    assert 0 < rows["first"]["requests"] < 18 and rows["first"]["usd"] <= 0.03 + 1e-9
    assert rows["second"]["requests"] > 0 and rows["second"]["usd"] <= 0.03
    assert len([p for p in result.pairs if p.teacher == "second"]) == rows["second"]["requests"]
