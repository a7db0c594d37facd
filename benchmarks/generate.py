"""Generation-client benchmark: throughput vs concurrency under an RPM limit, and what a resumed run re-sends.

Against the scripted OpenAI-compatible server (`maritime_slm.llm.testserver`) with a fixed latency per call,
through the full client path (cache, ledger, limiter, real `openai` client). Throughput should grow ~linearly
with concurrency (concurrency / latency) until the RPM limit caps it, and reach >= 90 % of the limit at the top.
Client and server share one process (~2.5 ms CPU per call together): keep the limit well below what the machine
can push (on a busy 2-core box, ~100 req/s), or the benchmark measures the CPU instead of the client.
Then: a rerun of a finished batch must send 0 requests, and a run interrupted mid-batch and resumed may re-send
only the calls that were in flight at the interruption.

    python benchmarks/generate.py [--latency 0.5] [--rpm 3000] [--seconds 5] [--out results.md]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path

from maritime_slm.config import ModelEndpoint
from maritime_slm.llm import BatchResult, Ledger, LLMClient, LLMRequest, RequestCache
from maritime_slm.llm.testserver import ScriptedServer

CONCURRENCY = (1, 4, 16, 64)


def endpoint_for(server: ScriptedServer, concurrency: int, rpm: int) -> ModelEndpoint:
    return ModelEndpoint(
        name="bench",
        model="gpt-4o",
        base_url=server.base_url,
        concurrency=concurrency,
        rpm=rpm,
        response_format="text",
    )


def prompts(tag: str, n: int) -> list[LLMRequest]:
    return [LLMRequest.chat(f"{tag} prompt {i}", tag=tag) for i in range(n)]


async def timed_batch(
    endpoint: ModelEndpoint, requests: list[LLMRequest], cache: RequestCache, ledger: Ledger
) -> tuple[BatchResult, float]:
    async with LLMClient(endpoint, cache=cache, ledger=ledger) as client:
        started = time.monotonic()
        batch = await client.run_batch(requests, progress=False)
        return batch, time.monotonic() - started


def throughput_table(
    server: ScriptedServer, folder: Path, latency: float, rpm: int, seconds: float
) -> list[dict]:
    """Per concurrency: wall rate against an ideal client's (waves of `concurrency` calls, or calls spaced at the
    limit, whichever is slower, plus one latency to drain), and the send rate the server saw against the limit."""
    limit_rps = rpm / 60
    rows = []
    for concurrency in CONCURRENCY:
        n = max(8, math.ceil(min(concurrency / latency, limit_rps) * seconds))
        endpoint = endpoint_for(server, concurrency, rpm)
        sent_before = server.count()
        with (
            RequestCache(folder / f"c{concurrency}.db") as cache,
            Ledger(folder / f"c{concurrency}") as ledger,
        ):
            batch, wall = asyncio.run(timed_batch(endpoint, prompts(f"c{concurrency}", n), cache, ledger))
        assert batch.n_ok == n and server.count() - sent_before == n, batch.summary()
        ideal_wall = max(math.ceil(n / concurrency) * latency, (n - 1) / limit_rps + latency)
        arrivals = sorted(seen.arrived for seen in server.seen[sent_before:])
        send_rate = (n - 1) / (arrivals[-1] - arrivals[0])
        rows.append(
            {
                "concurrency": concurrency,
                "requests": n,
                "seconds": wall,
                "req_per_s": n / wall,
                "ideal_req_per_s": n / ideal_wall,
                "pct_of_ideal": 100 * ideal_wall / wall,
                "send_rate": send_rate,
                "pct_of_rpm_limit": 100 * send_rate / limit_rps,
            }
        )
    return rows


async def interrupted_then_resumed(
    server: ScriptedServer, folder: Path, n: int, concurrency: int, rpm: int, interrupt_after_s: float
) -> dict:
    """Cancel a batch mid-run (as Ctrl-C would), resume it with the same cache, count what was sent twice."""
    endpoint = endpoint_for(server, concurrency, rpm)
    requests = prompts("resume", n)
    sent_before = server.count()
    with RequestCache(folder / "resume.db") as cache, Ledger(folder / "resume") as ledger:
        async with LLMClient(endpoint, cache=cache, ledger=ledger) as client:
            task = asyncio.create_task(client.run_batch(requests, progress=False))
            await asyncio.sleep(interrupt_after_s)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
        committed = len(cache)
        sent_first = server.count() - sent_before
        resumed, _ = await timed_batch(endpoint, requests, cache, ledger)
        sent_second = server.count() - sent_before - sent_first
        rerun, _ = await timed_batch(endpoint, requests, cache, ledger)
        sent_rerun = server.count() - sent_before - sent_first - sent_second
    repeats = sum(server.count(r.messages[-1]["content"]) - 1 for r in requests)
    assert resumed.n_ok == n and rerun.n_ok == n
    return {
        "prompts": n,
        "finished_before_interrupt": committed,
        "sent_before_interrupt": sent_first,
        "sent_on_resume": sent_second,
        "finished_calls_repeated": sent_second - (n - committed),
        "in_flight_calls_resent": repeats,
        "sent_on_rerun_of_finished_batch": sent_rerun,
        "rerun_cache_hits": rerun.cache_hits,
    }


def markdown(rows: list[dict], resume: dict, latency: float, rpm: int) -> str:
    lines = [
        f"Scripted server latency {latency * 1000:.0f} ms per call; client RPM limit {rpm} ({rpm / 60:.0f} req/s).",
        "",
        "| concurrency | requests | wall s | req/s | ideal req/s | % of ideal | send rate req/s | % of RPM limit |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['concurrency']} | {r['requests']} | {r['seconds']:.2f} | {r['req_per_s']:.1f} | "
            f"{r['ideal_req_per_s']:.1f} | {r['pct_of_ideal']:.0f} % | {r['send_rate']:.1f} | "
            f"{r['pct_of_rpm_limit']:.0f} % |"
        )
    lines += ["", "| resume check | value |", "|---|---:|"]
    lines += [f"| {key.replace('_', ' ')} | {value} |" for key, value in resume.items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.5, help="server seconds per call")
    parser.add_argument("--rpm", type=int, default=3000, help="client-side requests-per-minute limit")
    parser.add_argument("--seconds", type=float, default=5.0, help="target duration of each throughput run")
    parser.add_argument("--out", type=Path, help="also write the tables (Markdown) here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ScriptedServer(latency_s=args.latency) as server:
        folder = Path(tmp)
        rows = throughput_table(server, folder, args.latency, args.rpm, args.seconds)
        resume = asyncio.run(
            interrupted_then_resumed(server, folder, 200, 16, args.rpm, interrupt_after_s=1.0)
        )
    text = markdown(rows, resume, args.latency, args.rpm)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    top = rows[-1]
    ok = (
        top["pct_of_rpm_limit"] >= 90 and top["pct_of_ideal"] >= 90 and resume["finished_calls_repeated"] == 0
    )
    ok = ok and resume["sent_on_rerun_of_finished_batch"] == 0
    print(
        "\nPASS" if ok else "\nFAIL: below 90 % of the RPM limit at the top, or a finished call was repeated"
    )
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
