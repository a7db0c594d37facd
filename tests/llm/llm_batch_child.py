"""Run one batch against a server and write its results (the process the kill test kills and restarts).

usage: python llm_batch_child.py BASE_URL CACHE_DB LEDGER_DIR N CONCURRENCY OUT_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from maritime_slm.config import ModelEndpoint
from maritime_slm.llm import Backoff, Ledger, LLMRequest, RequestCache, run_batch


def main() -> None:
    base_url, cache_db, ledger_dir, n, concurrency, out = sys.argv[1:7]
    endpoint = ModelEndpoint(
        name="teacher",
        model="gpt-4o",
        base_url=base_url,
        concurrency=int(concurrency),
        response_format="text",
    )
    requests = [LLMRequest.chat(f"prompt {i}", tag="kill") for i in range(int(n))]
    with RequestCache(cache_db) as cache, Ledger(ledger_dir) as ledger:
        batch = run_batch(
            endpoint, requests, cache=cache, ledger=ledger, backoff=Backoff(0.01, 0.05), progress=False
        )
        session = ledger.totals("session")
    rows = [{"ok": r.ok, "value": r.value, "calls": r.calls, "cache_hits": r.cache_hits} for r in batch]
    summary = {"requests": session.requests, "cache_hits": session.cache_hits, "results": rows}
    Path(out).write_text(json.dumps(summary))


if __name__ == "__main__":
    main()
