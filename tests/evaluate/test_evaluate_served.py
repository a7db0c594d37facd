"""The students answering through their GGUF export behind the local llama.cpp server (`evaluate.student_runtime:
llama.cpp`), the agreement with the Hugging Face reference per quantization, and the free re-run."""

from __future__ import annotations

import json

import pytest
from evaluate_testdata import export_student, make_run, params

from maritime_slm.evaluate import evaluate_run
from maritime_slm.evaluate.served import QUANTS, gguf_path
from maritime_slm.llm import server

pytestmark = pytest.mark.slow


def no_model(*_args, **_kwargs):
    raise AssertionError("a Hugging Face model was loaded although every answer is cached")


def test_students_answer_through_llama_cpp_with_the_hf_reference_beside(tmp_path, monkeypatch):
    run = make_run(tmp_path, n_contexts=1)
    export = export_student(run["finetune"])
    assert export["status"] == "done", export.get("reason")
    p = params("evaluate.student_runtime=llama.cpp", "evaluate.reference_items=4")
    res = evaluate_run(run["generate"], run["curate"], run["finetune"], p, tmp_path / "s1", run["llm"],
                       progress=False)  # fmt: skip
    n = len(run["rows"])
    assert res["models"][:2] == ["student-base", "student-tuned"]
    preds = res["predictions"]
    for name in ("student-base", "student-tuned"):
        mine = preds.filter(preds["model"] == name)
        assert mine.height == n and (mine["status"] == "ok").all()
        assert (mine["latency_s"] > 0).all() and (mine["input_tokens"] > 100).all()
        assert (mine["output_tokens"] <= p.evaluate.max_new_tokens).all()
    served_as = f"llama.cpp {p.evaluate.student_quant.upper()} (1 in flight)"
    assert res["record"]["student_runtime"] == served_as
    # the served model name carries the GGUF's hash; the calls went through the llm package's ledger
    calls = [json.loads(line) for line in (tmp_path / "s1" / "calls.jsonl").read_text().splitlines()]
    sent = {c.get("model") for c in calls if c.get("event") == "attempt"}
    assert any(str(m).startswith("student-tuned-") for m in sent), sent

    agreement = {r["quantization"]: r for r in res["served_agreement"].iter_rows(named=True)}
    assert list(agreement) == [q.upper() for q in QUANTS]
    for row in agreement.values():
        assert row["n_items"] == 4 and row["same_final_answer"] + row["flipped"] == 4
        assert 0 <= row["agreement"] <= 1
    speed = {r["model"]: r for r in res["speed"].iter_rows(named=True)}
    assert speed["student-tuned-hf"]["runtime"].startswith("hf float32 (batch")
    assert speed["student-tuned"]["runtime"] == served_as
    assert speed["student-tuned"]["queries_per_s"] > 0
    assert (tmp_path / "s1" / "served_agreement.md").is_file()

    # again, into a fresh folder: every answer is cached, so no server starts and no model loads
    def no_server(*_args, **_kwargs):
        raise AssertionError("a llama.cpp server was started although every answer is cached")

    monkeypatch.setattr(server, "local_server", no_server)
    res2 = evaluate_run(run["generate"], run["curate"], run["finetune"], p, tmp_path / "s2", run["llm"],
                        progress=False, loader=no_model)  # fmt: skip
    assert res2["table_5"].equals(res["table_5"])
    assert res2["served_agreement"].equals(res["served_agreement"])


def test_a_missing_gguf_falls_back_to_hf_and_says_why(tmp_path):
    run = make_run(tmp_path, n_contexts=1, pairs_per_context=2)
    p = params("evaluate.student_runtime=llama.cpp", "evaluate.evaluate_teachers=false")
    res = evaluate_run(run["generate"], run["curate"], run["finetune"], p, tmp_path / "stage", run["llm"],
                       progress=False)  # fmt: skip
    missing = gguf_path(run["finetune"], "student_base", p.evaluate.student_quant)
    assert res["record"]["student_runtime"].startswith(f"hf (no {missing.name} in ")
    assert res["models"][0] == "student-base" and res["served_agreement"].is_empty()
