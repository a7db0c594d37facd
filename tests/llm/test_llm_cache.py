"""The request cache: a finished call is never paid for twice; anything that changes the reply changes the key."""

from __future__ import annotations

import subprocess
import sys

from llm_helpers import FAST, Echo, ask, make_endpoint

from maritime_slm.llm import CachedResponse, Ledger, RequestCache, request_key, run_batch
from maritime_slm.llm.testserver import Fail, Reply


def test_second_run_of_a_batch_makes_no_requests(scripted, tmp_path):
    server = scripted()
    endpoint = make_endpoint(server)
    requests = [ask(f"question {i}", tag="cat-a" if i % 2 else "cat-b") for i in range(12)]
    with RequestCache(tmp_path / "cache.db") as cache:
        with Ledger(tmp_path / "run") as ledger:
            first = run_batch(endpoint, requests, cache=cache, ledger=ledger, backoff=FAST, progress=False)
        with Ledger(tmp_path / "run") as ledger:
            second = run_batch(endpoint, requests, cache=cache, ledger=ledger, backoff=FAST, progress=False)
            session = ledger.totals("session")
            run = ledger.totals("run")

    assert server.count() == 12
    assert (
        [r.value for r in second]
        == [r.value for r in first]
        == [Echo(prompt=f"question {i}", length=len(f"question {i}")) for i in range(12)]
    )
    assert (session.requests, session.cache_hits, session.usd) == (0, 12, 0.0)
    assert (run.requests, run.cache_hits) == (12, 12)  # ledger.csv: everything the run folder paid for
    assert second.calls == 0 and second.usd == 0.0 and first.usd > 0
    rows = (tmp_path / "run" / "ledger.csv").read_text().splitlines()[1:]
    assert sorted(r.split(",")[1] for r in rows) == ["cat-a", "cat-b"]


def test_cached_replies_replay_reasks_without_requests(scripted, tmp_path):
    """A request that needed a re-ask is replayed from the cache entirely: same value, zero calls."""
    server = scripted(script={"q": [Reply("not json")], "bad": [Reply("never json")] * 3})
    endpoint = make_endpoint(server)
    with RequestCache(tmp_path / "cache.db") as cache:
        first = run_batch(endpoint, [ask("q"), ask("bad")], cache=cache, backoff=FAST, progress=False)
        second = run_batch(endpoint, [ask("q"), ask("bad")], cache=cache, backoff=FAST, progress=False)
    assert server.count() == 2 + 3
    assert second[0].ok and second[0].reasks == 1 and second[0].cache_hits == 2 and second[0].calls == 0
    assert second[1].failure == first[1].failure == "invalid_json" and second[1].calls == 0


def test_http_failures_are_not_cached(scripted, tmp_path):
    server = scripted(script={"q": [Fail(500)] * 3})
    endpoint = make_endpoint(server, max_retries=2)
    with RequestCache(tmp_path / "cache.db") as cache:
        assert (
            run_batch(endpoint, [ask("q")], cache=cache, backoff=FAST, progress=False)[0].failure
            == "http_error"
        )
        assert len(cache) == 0
        assert run_batch(endpoint, [ask("q")], cache=cache, backoff=FAST, progress=False)[0].ok
    assert server.count("q") == 4


def test_key_changes_with_what_changes_the_reply(scripted, tmp_path):
    server = scripted()
    with RequestCache(tmp_path / "cache.db") as cache:
        variants = [
            (make_endpoint(server), ask("q")),
            (make_endpoint(server), ask("q")),  # same: a hit
            (make_endpoint(server), ask("q", sample=1)),
            (make_endpoint(server), ask("q", temperature=0.1)),
            (make_endpoint(server), ask("q", max_tokens=99)),
            (make_endpoint(server, model="gpt-4o-mini"), ask("q")),
            (make_endpoint(server, response_format="json_object_schema"), ask("q")),
            (make_endpoint(server, name="another name, same model"), ask("q")),  # a hit: the name is a label
        ]
        for endpoint, request in variants:
            run_batch(endpoint, [request], cache=cache, backoff=FAST, progress=False)
    assert server.count("q") == 6


def test_a_new_server_address_still_hits_the_cache(scripted, tmp_path):
    """The local server gets a new port every run; the address must not be part of the key."""
    first, second = scripted(), scripted()
    with RequestCache(tmp_path / "cache.db") as cache:
        run_batch(make_endpoint(first), [ask("q")], cache=cache, backoff=FAST, progress=False)
        result = run_batch(make_endpoint(second), [ask("q")], cache=cache, backoff=FAST, progress=False)[0]
    assert result.ok and result.cache_hits == 1 and second.count() == 0


def test_identical_requests_in_flight_share_one_call(scripted, tmp_path):
    server = scripted(latency_s=0.2)
    with Ledger(tmp_path) as ledger:
        batch = run_batch(make_endpoint(server), [ask("q")] * 5, ledger=ledger, backoff=FAST, progress=False)
        session = ledger.totals("session")
    assert batch.n_ok == 5 and server.count("q") == 1
    assert (session.requests, session.cache_hits) == (1, 4)


def test_cache_is_shared_between_processes(tmp_path):
    path = tmp_path / "cache.db"
    with RequestCache(path) as cache:
        assert request_key({"a": 1, "b": [1, 2]}) == request_key({"b": [1, 2], "a": 1})
        code = (
            "import sys; from maritime_slm.llm import RequestCache, CachedResponse;"
            "RequestCache(sys.argv[1]).put('k', 'm', CachedResponse('hello', 'stop', 3, 4))"
        )
        subprocess.run([sys.executable, "-c", code, str(path)], check=True)
        assert cache.get("k") == CachedResponse("hello", "stop", 3, 4)
        assert "k" in cache and cache.get("other") is None
