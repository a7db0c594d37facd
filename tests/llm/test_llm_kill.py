"""`kill -9` mid-batch, then resume: a finished call is never paid twice, only calls in flight at the kill may
be, and no result is lost."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from maritime_slm.llm import read_log

CHILD = Path(__file__).with_name("llm_batch_child.py")
N, CONCURRENCY = 40, 4


def _cached_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
    except sqlite3.OperationalError:
        return 0  # the child has not created the table yet


def test_kill_9_and_resume_repeats_no_finished_call(scripted, tmp_path):
    server = scripted(latency_s=0.15)
    db, ledger_dir = tmp_path / "cache.db", tmp_path / "run"
    args = [sys.executable, str(CHILD), server.base_url, str(db), str(ledger_dir), str(N), str(CONCURRENCY)]

    child = subprocess.Popen([*args, str(tmp_path / "first.json")])
    deadline = time.monotonic() + 60
    while _cached_rows(db) < N // 3:
        assert child.poll() is None, "the first run ended before it could be killed"
        assert time.monotonic() < deadline, "the first run made no progress"
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished_at_kill = _cached_rows(db)
    sent_first = server.count()
    first_counts = server.counts()
    print(f"killed: {finished_at_kill} committed, {sent_first} sent")
    assert N // 3 <= finished_at_kill < N and not (tmp_path / "first.json").exists()

    subprocess.run([*args, str(tmp_path / "second.json")], check=True, timeout=120)
    second = json.loads((tmp_path / "second.json").read_text())
    sent_second = server.count() - sent_first

    # No result lost: every prompt answered, each by its own reply.
    assert [r["value"] for r in second["results"]] == [
        json.dumps({"prompt": f"prompt {i}", "length": len(f"prompt {i}")}) for i in range(N)
    ]
    # Finished calls were not repeated: the resumed run sent exactly the calls that had not been committed,
    # and served every committed one from the cache.
    assert sent_second == N - finished_at_kill == second["requests"]
    assert second["cache_hits"] == finished_at_kill
    # Only calls in flight at the kill were paid twice: at most one per concurrency slot, never a prompt 3 times.
    repeated = [p for p, n in server.counts().items() if n > 1]
    assert len(repeated) == sent_first + sent_second - N <= CONCURRENCY
    assert all(first_counts[p] == 1 and server.count(p) == 2 for p in repeated)
    # The call log kept every finished call of the killed run (cached replies are logged before they are cached).
    attempts = [e for e in read_log(ledger_dir / "calls.jsonl") if e["event"] == "attempt"]
    assert finished_at_kill <= len(attempts) - sent_second <= sent_first
