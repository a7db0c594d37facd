"""Serving benchmark: the same test prompts answered by Hugging Face `generate` (batched) and by the llama.cpp server
on the run's exported GGUF, on this machine. Each runtime runs in its own process (its peak RSS is its own).

    .venv/bin/python benchmarks/serve.py --run default --items 100 --out benchmarks/results/serve.md

Rows: HF generate (the evaluate stage's backend, batch `--batch`), then each GGUF quantization behind
`maritime_slm.llm.local_server` at each `--concurrency` (requests in flight, async `openai` client; items grouped
by snapshot, as the evaluate stage asks them). Columns: queries/s (answers / wall time of the whole set), output
tokens/s, p50/p95 latency of one answer (a batched answer waits for its batch), peak RSS of the process that holds
the model, and the share of items whose final answer equals the reference's: HF generate on the same weights upcast
to float32 (llama.cpp computes in float32; the timed HF row runs in the training dtype, the faster one here). Nothing
is cached: every answer is generated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _items(run_dir: Path, n: int):
    from maritime_slm.evaluate.items import load_items

    return sorted(load_items(run_dir / "curate", n), key=lambda it: (it.context_id, it.id))


def worker_hf(run_dir: Path, n: int, batch: int) -> dict:
    from maritime_slm.config import load_resolved
    from maritime_slm.finetune import generate_answers, load_for_inference

    params = load_resolved(run_dir)
    items = _items(run_dir, n)
    model, tokenizer = load_for_inference(run_dir / "finetune" / "adapter", params)
    generate_answers(model, tokenizer, [items[0].messages], max_new_tokens=8, batch_size=1, progress=False)
    replies, latencies = [], []
    started = time.perf_counter()
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        t0 = time.perf_counter()
        out = generate_answers(model, tokenizer, [it.messages for it in chunk],
                               max_new_tokens=params.evaluate.max_new_tokens, batch_size=len(chunk), progress=False)  # fmt: skip
        latencies += [time.perf_counter() - t0] * len(chunk)
        replies += out
    wall = time.perf_counter() - started
    tokens = [len(ids) for ids in tokenizer(replies, add_special_tokens=False)["input_ids"]]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    reference = generate_answers(model.float(), tokenizer, [it.messages for it in items],
                                 max_new_tokens=params.evaluate.max_new_tokens, batch_size=batch, progress=False)  # fmt: skip
    ids = [it.id for it in items]
    return {"runtime": f"HF generate, batch {batch}", "concurrency": batch, "wall_s": wall, "latencies": latencies,
            "output_tokens": tokens, "replies": dict(zip(ids, replies, strict=True)), "peak_rss_mib": peak,
            "reference": dict(zip(ids, reference, strict=True))}  # fmt: skip


def _server_peak_rss_mib() -> float | None:
    """VmHWM of this process's llama.cpp server child (Linux /proc)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != os.getpid():
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, IndexError, ValueError):
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


async def _ask_all(base_url: str, model: str, items, max_tokens: int, concurrency: int):
    from openai import AsyncOpenAI

    from maritime_slm.evaluate.served import STUDENT_REPEAT_PENALTY

    client = AsyncOpenAI(base_url=base_url, api_key="no-key-required", max_retries=0, timeout=600)
    gate = asyncio.Semaphore(concurrency)
    results: dict[str, tuple[str, int, float]] = {}

    async def ask(it) -> None:
        async with gate:
            t0 = time.perf_counter()
            r = await client.chat.completions.create(model=model, messages=it.messages, max_tokens=max_tokens,
                                                     temperature=0.0, extra_body={"repeat_penalty": STUDENT_REPEAT_PENALTY})  # fmt: skip
            results[it.id] = (
                r.choices[0].message.content or "",
                r.usage.completion_tokens,
                time.perf_counter() - t0,
            )

    started = time.perf_counter()
    await asyncio.gather(*(ask(it) for it in items))
    wall = time.perf_counter() - started
    await client.close()
    return results, wall


async def _ask_lanes(urls: list[str], lanes: list[list], max_tokens: int):
    """Each server asked its own lane, one request in flight each, all at once."""
    return await asyncio.gather(
        *(_ask_all(url, "student", lane, max_tokens, 1) for url, lane in zip(urls, lanes, strict=True))
    )


def _lanes(items, replicas: int) -> list[list]:
    """Items dealt to servers a snapshot at a time, exactly as the evaluate stage deals them."""
    from maritime_slm.llm import LLMRequest, lanes

    requests = [LLMRequest(messages=it.messages, affinity=it.context_id) for it in items]
    return [[items[index] for index, _ in lane] for lane in lanes(requests, replicas)]


def _row(runtime: str, concurrency: int, wall: float, results: dict, items) -> dict:
    return {"runtime": runtime, "concurrency": concurrency, "wall_s": wall,
            "latencies": [results[it.id][2] for it in items],
            "output_tokens": [results[it.id][1] for it in items],
            "replies": {it.id: results[it.id][0] for it in items},
            "peak_rss_mib": _server_peak_rss_mib()}  # fmt: skip


def worker_llama(
    run_dir: Path, n: int, quant: str, levels: list[int], replica_levels: list[int]
) -> list[dict]:
    from maritime_slm.config import ModelEndpoint, load_resolved
    from maritime_slm.evaluate.served import gguf_path
    from maritime_slm.llm.server import local_server, serving

    params = load_resolved(run_dir)
    items = _items(run_dir, n)
    gguf = gguf_path(run_dir / "finetune", "student_tuned", quant)
    rows = []
    for replicas in replica_levels:
        endpoint = ModelEndpoint(
            name="student", model="student", local=True, local_gguf=str(gguf), replicas=replicas
        )
        with serving([endpoint], n_threads=os.cpu_count() or 2) as (served,):
            urls = served.replica_urls
            asyncio.run(_ask_all(urls[0], "student", items[:1], 8, 1))
            started = time.perf_counter()
            parts = asyncio.run(_ask_lanes(urls, _lanes(items, replicas), params.evaluate.max_new_tokens))
            results = {k: v for part, _ in parts for k, v in part.items()}
            threads = max(1, (os.cpu_count() or 2) // replicas)
            runtime = f"llama.cpp server, {quant.upper()}, {replicas} servers x {threads} thread"
            rows.append(_row(runtime, replicas, time.perf_counter() - started, results, items))
    with local_server(gguf, model_alias="student") as base_url:
        asyncio.run(_ask_all(base_url, "student", items[:1], 8, 1))
        for level in levels:
            results, wall = asyncio.run(
                _ask_all(base_url, "student", items, params.evaluate.max_new_tokens, level)
            )
            rows.append(_row(f"llama.cpp server, {quant.upper()}", level, wall, results, items))
    return rows


def summarise(rows: list[dict]) -> str:
    from maritime_slm.answers import parse_final_answer

    hf = rows[0]
    hf_final = {i: parse_final_answer(r) for i, r in hf["reference"].items()}
    hf_qps = len(hf["latencies"]) / hf["wall_s"]
    head = ("| runtime | in flight | items | queries/s | x HF | output tokens/s | p50 latency s | p95 latency s | "
            "peak RSS MiB | same final answer as HF float32 |")  # fmt: skip
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        n = len(r["latencies"])
        qps = n / r["wall_s"]
        same = sum(parse_final_answer(reply) == hf_final[i] for i, reply in r["replies"].items())
        rss = f"{r['peak_rss_mib']:,.0f}" if r["peak_rss_mib"] else "n/a"
        lines.append(
            f"| {r['runtime']} | {r['concurrency']} | {n} | {qps:.2f} | {qps / hf_qps:.1f} | "
            f"{sum(r['output_tokens']) / r['wall_s']:.1f} | {np.percentile(r['latencies'], 50):.2f} | "
            f"{np.percentile(r['latencies'], 95):.2f} | {rss} | {same}/{n} ({100 * same / n:.0f} %) |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--run", required=True, help="run name under outputs/ (finetune with GGUF export done)"
    )
    parser.add_argument("--items", type=int, default=100, help="test items, spread over categories")
    parser.add_argument("--batch", type=int, default=8, help="HF generate batch size")
    parser.add_argument("--quants", default="f16,q8_0", help="GGUF quantizations to serve")
    parser.add_argument("--concurrency", default="1,4,8", help="requests in flight per served quantization")
    parser.add_argument("--replicas", default="", help="also: N servers splitting the CPU threads, e.g. 2")
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    run_dir = ROOT / "outputs" / args.run
    levels = [int(c) for c in args.concurrency.split(",")]
    replica_levels = [int(r) for r in args.replicas.split(",") if r.strip()]
    if args.worker:
        kind, out = args.worker[0], Path(args.worker[1])
        rows = (
            [worker_hf(run_dir, args.items, args.batch)]
            if kind == "hf"
            else worker_llama(run_dir, args.items, kind, levels, replica_levels)
        )
        out.write_text(json.dumps(rows))
        return
    rows = []
    work = run_dir / "bench" / "serve"
    work.mkdir(parents=True, exist_ok=True)
    for kind in ["hf", *args.quants.split(",")]:
        out = work / f"{kind}.json"
        subprocess.run(
            [sys.executable, __file__, "--run", args.run, "--items", str(args.items), "--batch", str(args.batch),
             "--concurrency", args.concurrency, "--replicas", args.replicas, "--worker", kind, str(out)],
            check=True,
        )  # fmt: skip
        rows += json.loads(out.read_text())
        print(summarise(rows), flush=True)
    table = summarise(rows)
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
