"""Benchmark: LoRA training speed and memory of the `unsloth` and `hf` backends on the same recipe and data.

Each configuration runs in its own interpreter (imports and Unsloth's patches never leak between them) through
`maritime_slm.finetune.train_student`, on synthetic chat examples of exactly `--seq-len` tokens (loss on the answer).
Reported per configuration: median seconds per optimizer step and tokens/s over the steps after `--warmup`
(optimizer-step time only: no evaluation, checkpointing or export), and peak memory (peak RSS of the process on
CPU; `torch.cuda.max_memory_allocated` on GPU).

    # CPU: SmolLM2-135M-Instruct (the default-profile student), bs 4 x 256 tokens, 20 steps per configuration
    .venv/bin/python benchmarks/train.py
    # variants measured to pick the CPU defaults (precision, gradient checkpointing); --threads 1 on a busy machine
    .venv/bin/python benchmarks/train.py --configs unsloth,hf,unsloth+fp32,hf+fp32,unsloth+gc
    # real, variable-length data (a run's curated split) at the default profile's max length
    .venv/bin/python benchmarks/train.py --data outputs/default/curate --seq-len 896 --steps 48
    # GPU: QLoRA (4-bit) on a ~0.4B-parameter Qwen2-architecture model built from a config (no download)
    .venv/bin/python benchmarks/train.py --gpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# config name -> (backend, recipe changes)
CONFIGS = {
    "unsloth": ("unsloth", {}),
    "hf": ("hf", {}),
    "unsloth+gc": ("unsloth", {"gradient_checkpointing": True}),
    "hf+gc": ("hf", {"gradient_checkpointing": True}),
    "hf+fp32": ("hf", {"bf16": False}),
    "unsloth+fp32": ("unsloth", {"dtype": "float32", "bf16": False}),
    "unsloth+4bit": ("unsloth", {"load_in_4bit": True}),
}

SYSTEM = "You are a maritime analyst. Answer from the AIS snapshot; end with 'Final answer: ...'."


def gpu_model_dir() -> Path:
    """A random-init Qwen2-architecture model of ~0.4B parameters with SmolLM2's tokenizer, built once."""
    from maritime_slm.models import random_qwen2_dir

    return random_qwen2_dir(
        "bench-qwen2-0.4b",
        bf16=True,
        hidden_size=1024,
        intermediate_size=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
        num_key_value_heads=4,
        max_position_embeddings=4096,
    )


def write_examples(curate_dir: Path, n: int, seq_len: int, seed: int = 0) -> None:
    """`n` chat examples of exactly `seq_len` tokens each (an AIS table, a question, a short answer)."""
    import random

    from maritime_slm.finetune.chat import encode_for_training
    from maritime_slm.models import smollm2_tokenizer

    tok = smollm2_tokenizer()
    rng = random.Random(seed)
    folder = curate_dir / "dataset"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "train.jsonl").open("w") as fh:
        for i in range(n):
            lines = [
                f"MMSI {367000000 + rng.randrange(10**6)} | SOG {rng.uniform(0, 20):.1f} kn | "
                f"COG {rng.uniform(0, 360):.0f} | {rng.choice(['cargo', 'tanker', 'tug', 'fishing'])}"
                for _ in range(seq_len // 10 + 10)  # more table than fits; trimmed below
            ]
            answer = f"The highest SOG in the table is {rng.uniform(10, 20):.1f} kn.\nFinal answer: {rng.randrange(99)} kn"
            question = "\n\nQuestion: Which vessel is the fastest?"

            def messages(text: str, question: str = question, answer: str = answer) -> list[dict]:
                return [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": text + question},
                    {"role": "assistant", "content": answer},
                ]

            table = "\n".join(lines)
            ids = tok(table, add_special_tokens=False)["input_ids"]
            overhead = len(encode_for_training(tok, messages(""))[0])
            keep = seq_len - overhead
            for _ in range(8):  # decoding and re-encoding can shift a token: adjust until exact
                text = tok.decode(ids[:keep], clean_up_tokenization_spaces=False)
                length = len(encode_for_training(tok, messages(text))[0])
                if length == seq_len:
                    break
                keep += seq_len - length
            fh.write(json.dumps({"id": f"b{i}", "messages": messages(text)}) + "\n")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def worker(args) -> None:
    backend, changes = CONFIGS[args.worker]
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    from maritime_slm.finetune import import_backend

    import_backend(backend)  # Unsloth first, as in a notebook
    from maritime_slm.config import load_params
    from maritime_slm.finetune import derive_recipe, train_student

    overrides = [
        f"finetune.backend={backend}",
        f"finetune.max_steps={args.steps}",
        f"finetune.batch_size={args.batch_size}",
        f"finetune.max_length={args.seq_len}",
        "finetune.warmup_steps=2",
        "finetune.lora_r=16",
        "finetune.lora_alpha=16",
        "finetune.grad_accum=1",
    ]
    if args.gpu:
        overrides += [
            "finetune.student=hub",
            f"finetune.model_name={gpu_model_dir()}",
            "finetune.load_in_4bit=true",
        ]
    else:
        overrides += ["finetune.student=smollm2-135m-gguf", "finetune.load_in_4bit=false"]
    params = load_params("smoke", overrides)
    recipe = derive_recipe(params.finetune).with_(
        logging_steps=1, save_steps=10**6, export_merged=False, gguf_quantization=None, **changes
    )
    work = Path(args.work)
    started = time.perf_counter()
    result = train_student(
        work / "curate", params, work / "stage", work / "ckpt", recipe=recipe, export=False
    )
    s = result.summary
    rows = [e for e in result.trainer.state.log_history if "loss" in e and "train_s" in e]
    steps, times, tokens = [], [], []
    prev_t, prev_tok = 0.0, 0.0
    for e in rows:
        steps.append(e["step"])
        times.append(e["train_s"] - prev_t)
        tokens.append(e.get("num_tokens", 0) - prev_tok)
        prev_t, prev_tok = e["train_s"], e.get("num_tokens", 0)
    measured = [(t, k) for st, t, k in zip(steps, times, tokens, strict=True) if st > args.warmup]
    out = {
        "config": args.worker,
        "backend": backend,
        "device": s["device_name"]
        if args.gpu
        else f"CPU {platform.machine()}, {torch_threads()} torch threads",
        "precision": {None: "bf16 (Unsloth's CPU default)", True: "bf16 autocast", False: "fp32"}[
            recipe.bf16
        ],
        "gradient_checkpointing": recipe.gradient_checkpointing,
        "load_in_4bit": recipe.load_in_4bit,
        "steps": s["steps"],
        "s_per_step_median": statistics.median(t for t, _ in measured),
        "tokens_per_s": sum(k for _, k in measured) / sum(t for t, _ in measured),
        "peak_memory_gib": s["peak_memory_gb"],
        "peak_memory_kind": s["peak_memory_kind"],
        "final_loss": s["final_train_loss"],
        "first_loss": rows[0]["loss"] if rows else None,
        "trainable_params": s["trainable_params"],
        "wall_s": time.perf_counter() - started,
        "losses": [round(e["loss"], 4) for e in rows],
        "s_per_step_first_quarter": statistics.mean(t for t, _ in measured[: max(1, len(measured) // 4)]),
        "s_per_step_last_quarter": statistics.mean(t for t, _ in measured[-max(1, len(measured) // 4) :]),
        "load_avg_1min": os.getloadavg()[0],
    }
    Path(args.json).write_text(json.dumps(out, indent=2, default=str))


def markdown(results: list[dict], args) -> str:
    head = (
        "| config | backend | precision | grad. ckpt | 4-bit | s/step (median) | tokens/s | peak memory (GiB) "
        "| s/step first → last quarter | loss first → last | load avg |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r['config']} | {r['backend']} | {r['precision']} | {r['gradient_checkpointing']} | {r['load_in_4bit']} "
        f"| {r['s_per_step_median']:.3f} | {r['tokens_per_s']:,.0f} | {r['peak_memory_gib']:.2f} "
        f"| {r['s_per_step_first_quarter']:.2f} → {r['s_per_step_last_quarter']:.2f} "
        f"| {r['first_loss']:.2f} → {r['final_loss']:.2f} | {r['load_avg_1min']:.1f} |\n"
        for r in results
    )
    note = (
        f"\n{'GPU' if args.gpu else 'CPU'}: {results[0]['device'] if results else '?'}; bs {args.batch_size} x "
        f"{'up to ' + str(args.seq_len) + ' tokens of ' + str(args.data) if args.data else str(args.seq_len) + ' tokens'}"
        f", {args.steps} steps per config, timing over steps > {args.warmup}; peak memory = "
        f"{results[0]['peak_memory_kind'] if results else '?'}; load avg = the machine's 1-minute load at the end "
        f"of each run ({os.cpu_count()} cores: above that, other processes shared the cores).\n"
    )
    return head + body + note


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--configs", default="unsloth,hf", help=f"comma-separated, of: {', '.join(CONFIGS)}")
    parser.add_argument(
        "--gpu", action="store_true", help="QLoRA on a ~0.4B Qwen2 model built locally (needs CUDA)"
    )
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2, help="steps left out of the timing")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 4 on CPU, 8 on GPU")
    parser.add_argument("--seq-len", type=int, default=None, help="default: 256 on CPU, 1024 on GPU")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    parser.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    parser.add_argument(
        "--data", type=Path, default=None,
        help="a run's curate folder (real, variable-length examples) instead of synthetic fixed-length ones",
    )  # fmt: skip
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    parser.add_argument("--json", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch_size = args.batch_size or (8 if args.gpu else 4)
    args.seq_len = args.seq_len or (1024 if args.gpu else 256)
    if args.worker:
        worker(args)
        return

    import torch

    if args.gpu and not torch.cuda.is_available():
        sys.exit("--gpu needs a CUDA device; none is visible here")
    if not args.gpu and torch.cuda.is_available():
        print(
            "note: a GPU is visible; the CPU benchmark still trains on the GPU through the backends' defaults"
        )
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        sys.exit(f"unknown configs {unknown}; choose from {', '.join(CONFIGS)}")
    if args.gpu:
        gpu_model_dir()
    else:
        from maritime_slm.models import smollm2_model_dir

        smollm2_model_dir()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        data = Path(tmp) / "data"
        if args.data:
            train = args.data.resolve() / "dataset" / "train.jsonl"
            if not train.is_file():
                sys.exit(f"--data {args.data}: no dataset/train.jsonl there (run the curate stage first)")
            (data / "curate" / "dataset").mkdir(parents=True)
            os.symlink(train, data / "curate" / "dataset" / "train.jsonl")
        else:
            write_examples(data / "curate", args.steps * args.batch_size, args.seq_len)
        for config in configs:
            work = Path(tmp) / config
            work.mkdir()
            os.symlink(data / "curate", work / "curate")
            out = work / "result.json"
            cmd = [sys.executable, __file__, "--worker", config, "--work", str(work), "--json", str(out),
                   "--steps", str(args.steps), "--warmup", str(args.warmup),
                   "--batch-size", str(args.batch_size), "--seq-len", str(args.seq_len)]  # fmt: skip
            if args.gpu:
                cmd.append("--gpu")
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            print(f"== {config} ...", flush=True)
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-4000:], sep="\n")
                sys.exit(f"{config} failed (exit {proc.returncode})")
            results.append(json.loads(out.read_text()))
            r = results[-1]
            print(f"   {r['s_per_step_median']:.3f} s/step, {r['tokens_per_s']:,.0f} tokens/s, "
                  f"{r['peak_memory_gib']:.2f} GiB peak, {r['wall_s']:.0f} s in all; losses {r['losses']}", flush=True)  # fmt: skip
    table = markdown(results, args)
    print("\n" + table)
    if args.out:
        args.out.write_text(table)


if __name__ == "__main__":
    main()
