"""A served student split over local server replicas: each snapshot's questions go to one replica (its prompt cache
holds the snapshot), replicas work side by side, and lanes stay balanced."""

from __future__ import annotations

import json

from maritime_slm.config import ModelEndpoint
from maritime_slm.evaluate.predict import in_flight
from maritime_slm.llm import LLMRequest, lanes, run_batch
from maritime_slm.llm.testserver import ScriptedServer


def ask(prompt: str, snapshot: str) -> LLMRequest:
    return LLMRequest.chat(prompt, affinity=snapshot, max_tokens=8, temperature=0.0)


def replicated(first: ScriptedServer, second: ScriptedServer, concurrency: int) -> ModelEndpoint:
    """A student served by two replicas, as `serving()` hands it over."""
    return ModelEndpoint(
        name="student", model="student-x", base_url=first.base_url, replicas=2,
        replica_urls=[first.base_url, second.base_url], response_format="text", temperature=0.0,
        max_tokens=8, concurrency=concurrency, timeout_s=5.0, max_retries=0,
    )  # fmt: skip


def test_lanes_keep_a_snapshot_together_and_balance_the_replicas():
    requests = [ask(f"q{i}", snapshot) for i, snapshot in enumerate("aaaabbcdddde")]
    dealt = lanes(requests, 2)
    assert sorted(i for lane in dealt for i, _ in lane) == list(range(12))
    for replica, lane in enumerate(dealt):
        assert [r.replica for _, r in lane] == [replica] * len(lane)
        assert [i for i, _ in lane] == sorted(i for i, _ in lane)  # asked in their order
    homes = [{r.affinity for _, r in lane} for lane in dealt]
    assert not homes[0] & homes[1]  # a snapshot in one lane only
    sizes = sorted(len(lane) for lane in dealt)
    assert sizes[1] - sizes[0] <= 4  # within the largest snapshot: a new snapshot goes to the lighter lane


def test_each_snapshot_is_answered_by_one_replica_and_both_replicas_work(tmp_path):
    first, second = ScriptedServer().start(), ScriptedServer().start()
    try:
        endpoint = replicated(first, second, concurrency=2)
        snapshots = {f"q{i}": snapshot for i, snapshot in enumerate("aaabbbcccddd")}
        requests = [ask(prompt, snapshot) for prompt, snapshot in snapshots.items()]
        batch = run_batch(endpoint, requests, progress=False, timed=True)
        results, latencies, wall = batch.results, [r.latency_s for r in batch.results], batch.elapsed_s
        assert all(r.ok for r in results) and len(results) == 12
        assert 0 < max(latencies) <= wall
        seen = [{snapshots[p] for p in server.counts()} for server in (first, second)]
        assert seen[0] and seen[1]  # both replicas answered
        assert not seen[0] & seen[1]  # no snapshot was read by both
        assert sum(first.counts().values()) + sum(second.counts().values()) == 12
    finally:
        first.stop()
        second.stop()


def _overlap(first: ScriptedServer, second: ScriptedServer) -> bool:
    """Whether some request of one server arrived while the other was still answering one."""
    spans = [[(s.arrived, s.answered) for s in server.seen] for server in (first, second)]
    return any(a0 < b1 and b0 < a1 for a0, a1 in spans[0] for b0, b1 in spans[1])


def test_replicas_with_one_request_in_flight_each_answer_at_the_same_time():
    """`concurrency` is per server: two one-slot replicas must work side by side, not take turns (they took turns
    when the client held one slot for the whole endpoint, and two replicas were slower than one server)."""
    first, second = ScriptedServer(latency_s=0.2).start(), ScriptedServer(latency_s=0.2).start()
    try:
        endpoint = replicated(first, second, concurrency=1)
        requests = [ask(f"q{i}", snapshot) for i, snapshot in enumerate("aabbccdd")]
        batch = run_batch(endpoint, requests, progress=False, timed=True)
        results, latencies, wall = batch.results, [r.latency_s for r in batch.results], batch.elapsed_s
        assert all(r.ok for r in results)
        # each answer's share of the pool's time (what the speed table sums) adds up to the wall time, not twice it
        assert in_flight(endpoint) == 2
        assert abs(sum(latencies) / in_flight(endpoint) - wall) < 0.35 * wall
        assert len(first.seen) == len(second.seen) == 4
        assert _overlap(first, second)
        for server in (first, second):  # one in flight per server
            spans = sorted((s.arrived, s.answered) for s in server.seen)
            assert all(b[0] >= a[1] - 0.05 for a, b in zip(spans, spans[1:], strict=False))
    finally:
        first.stop()
        second.stop()


def test_run_batch_spreads_a_replicated_endpoint_over_its_servers_a_snapshot_at_a_time():
    from maritime_slm.llm import run_batch

    first, second = ScriptedServer(latency_s=0.1).start(), ScriptedServer(latency_s=0.1).start()
    try:
        endpoint = replicated(first, second, concurrency=1)
        snapshots = {f"q{i}": snapshot for i, snapshot in enumerate("aabbccdd")}
        batch = run_batch(endpoint, [ask(p, s) for p, s in snapshots.items()], progress=False)
        assert all(r.ok for r in batch) and [json.loads(r.text)["prompt"] for r in batch] == list(snapshots)
        seen = [{snapshots[p] for p in server.counts()} for server in (first, second)]
        assert seen[0] and seen[1] and not seen[0] & seen[1]
        assert _overlap(first, second)
    finally:
        first.stop()
        second.stop()
