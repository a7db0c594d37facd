"""The ledger: per (teacher, category) sums of an append-only call log that survives crashes."""

from __future__ import annotations

import pytest
from llm_helpers import FAST, ask, make_endpoint

from maritime_slm.llm import LEDGER_COLUMNS, Ledger, ledger_rows, read_log, run_batch
from maritime_slm.llm.testserver import Fail, Reply


def test_rows_per_teacher_and_category(scripted, tmp_path):
    server = scripted(script={"b1": [Fail(429)], "b2": [Reply(None, refusal="no")]})
    with Ledger(tmp_path) as ledger:
        for name in ("gpt-4o", "o3-mini"):
            endpoint = make_endpoint(server, name=name, model=name)
            requests = [ask("a1", tag="kinematics"), ask("b1", tag="traffic"), ask("b2", tag="traffic")]
            run_batch(endpoint, requests, ledger=ledger, backoff=FAST, progress=False)
        rows = {(r.teacher, r.category): r for r in ledger.rows()}

    assert set(rows) == {(t, c) for t in ("gpt-4o", "o3-mini") for c in ("kinematics", "traffic")}
    gpt_traffic = rows["gpt-4o", "traffic"]
    assert (gpt_traffic.requests, gpt_traffic.failures, gpt_traffic.cache_hits) == (
        3,
        1,
        0,
    )  # 429 + retry + refusal
    assert gpt_traffic.input_tokens > 0 and gpt_traffic.usd == pytest.approx(
        (gpt_traffic.input_tokens * 2.5 + gpt_traffic.output_tokens * 10.0) / 1e6
    )
    # o3-mini's b2 repeats gpt-4o's refused prompt; the body differs (model), so it is a fresh request.
    assert rows["o3-mini", "traffic"].requests == 2  # the scripted 429 was consumed by gpt-4o
    header, *lines = (tmp_path / "ledger.csv").read_text().splitlines()
    assert header == ",".join(LEDGER_COLUMNS) and len(lines) == 4
    assert ledger_rows(tmp_path / "calls.jsonl") == list(rows.values())


def test_log_survives_a_line_cut_by_a_crash(tmp_path):
    with Ledger(tmp_path) as ledger:
        ledger.record("attempt", "t", "c", status="ok", input_tokens=10, output_tokens=5, usd=0.5)
    with (tmp_path / "calls.jsonl").open("a") as f:
        f.write('{"event": "attempt", "teacher": "t", "categ')  # the process died mid-line
    with Ledger(tmp_path) as ledger:
        ledger.record("attempt", "t", "c", status="ok", input_tokens=1, output_tokens=1, usd=0.25)
        assert ledger.totals("run").requests == 2 and ledger.totals("session").requests == 1
        assert ledger.total_usd() == pytest.approx(0.75)
    assert len(read_log(tmp_path / "calls.jsonl")) == 2


def test_sessions_add_up_in_the_csv(tmp_path):
    for _ in range(3):
        with Ledger(tmp_path) as ledger:
            ledger.record("attempt", "t", "c", status="ok", usd=1.0)
            ledger.record("cache_hit", "t", "c")
            ledger.record("outcome", "t", "c", status="failure", failure="truncated")
            assert ledger.totals("session").requests == 1
    assert (tmp_path / "ledger.csv").read_text().splitlines()[1] == "t,c,3,3,0,0,3.0,3,0,0"
