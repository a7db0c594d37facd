"""A served student split over local server replicas: each snapshot's questions go to one replica (its prompt cache
holds the snapshot), replicas work side by side, and lanes stay balanced."""

from __future__ import annotations

from maritime_slm.config import ModelEndpoint
from maritime_slm.evaluate.predict import lanes, run_timed
from maritime_slm.llm import LLMRequest
from maritime_slm.llm.testserver import ScriptedServer


def ask(prompt: str, snapshot: str) -> LLMRequest:
    return LLMRequest.chat(prompt, affinity=snapshot, max_tokens=8, temperature=0.0)


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
        endpoint = ModelEndpoint(
            name="student", model="student-x", base_url=first.base_url, replicas=2,
            replica_urls=[first.base_url, second.base_url], response_format="text", temperature=0.0,
            max_tokens=8, concurrency=2, timeout_s=5.0, max_retries=0,
        )  # fmt: skip
        snapshots = {f"q{i}": snapshot for i, snapshot in enumerate("aaabbbcccddd")}
        requests = [ask(prompt, snapshot) for prompt, snapshot in snapshots.items()]
        results, latencies, wall = run_timed(
            endpoint, requests, cache=None, ledger=None, budget=None, progress=False
        )
        assert all(r.ok for r in results) and len(results) == 12
        assert 0 < max(latencies) <= wall
        seen = [{snapshots[p] for p in server.counts()} for server in (first, second)]
        assert seen[0] and seen[1]  # both replicas answered
        assert not seen[0] & seen[1]  # no snapshot was read by both
        assert sum(first.counts().values()) + sum(second.counts().values()) == 12
    finally:
        first.stop()
        second.stop()
