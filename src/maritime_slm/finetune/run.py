"""The finetune stage: LoRA/QLoRA on the curated QA dataset, with resumable checkpoints, logs, figure 4, table 4.

`run(stage)` (over `finetune_run(curate_dir, params, stage_dir, checkpoint_dir)`) is what notebook 04 calls.
Checkpoints live in `checkpoint_dir`, outside the stage folder (which the runner swaps in atomically on success), so a re-run after a
crash resumes from the last complete checkpoint of the *same* run (same params, data and backend); checkpoints of
a different run are cleared. A finished run keeps its final checkpoint, so re-running an unchanged stage only
rewrites its outputs.
"""

from __future__ import annotations

import json
import logging
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from maritime_slm.config import Params
from maritime_slm.finetune.backend import Recipe, derive_recipe, import_backend
from maritime_slm.finetune.data import (
    DatasetError,
    Encoded,
    dataset_dir,
    encode_rows,
    file_sha,
    pack_by_context,
    read_split,
)
from maritime_slm.finetune.export import export_gguf, export_merged, is_4bit
from maritime_slm.finetune.figures import figure_4, table_4, train_log
from maritime_slm.finetune.model import add_lora, effective_rope_scaling, load_base, student_source
from maritime_slm.finetune.trainer import build_trainer, prepare_checkpoint_dir, run_log_callback
from maritime_slm.report.tables import write_table
from maritime_slm.stage import Stage, StageRecord, StageResult

logger = logging.getLogger(__name__)

PAPER_STUDENT = "Qwen2.5-7B-Instruct"
PAPER_METHOD = "QLoRA (4-bit) with Unsloth, one GPU"


@dataclass
class FinetuneResult:
    """What a run leaves in memory: the trained model and tokenizer (for tests and notebooks) and the summary."""

    model: Any
    tokenizer: Any
    trainer: Any
    summary: dict[str, Any] = field(default_factory=dict)


def _peak_memory(device: str) -> tuple[float, str]:
    if device == "cuda":
        import torch

        return torch.cuda.max_memory_allocated() / 2**30, "torch.cuda.max_memory_allocated"
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**30, "peak RSS of the process"


def _device_name(device: str) -> str:
    if device == "cuda":
        import torch

        return torch.cuda.get_device_name(0)
    import torch

    return f"CPU {platform.machine()}, {torch.get_num_threads()} threads"


def _fingerprint(params: Params, recipe: Recipe, source: str, data_dir: Path) -> dict[str, Any]:
    keep = ("load_in_4bit", "gradient_checkpointing", "dtype", "bf16", "fp16", "optim", "weight_decay")
    keep += ("logging_steps", "eval_steps", "save_steps", "max_eval_items")
    return {
        "finetune": params.finetune.model_dump(mode="json", exclude={"gpu_hour_usd"}),
        "recipe": {k: getattr(recipe, k) for k in ("backend", "device", *keep)},
        "student": source,
        "data": {s: file_sha(data_dir / f"{s}.jsonl") for s in ("train", "val")},
    }


def _last(log, column: str) -> float | None:
    values = log[column].drop_nulls()
    return float(values[-1]) if len(values) else None


def train_student(
    curate_dir: Path,
    params: Params,
    stage_dir: Path,
    checkpoint_dir: Path,
    recipe: Recipe | None = None,
    callbacks: list | None = None,
    export: bool = True,
) -> FinetuneResult:
    """`finetune_run`, keeping the trained model in memory. `recipe` overrides the derived settings (benchmarks,
    tests); `callbacks` are extra transformers TrainerCallbacks."""
    started = time.perf_counter()
    train = params.finetune
    recipe = recipe or derive_recipe(train)
    import_backend(recipe.backend)  # fails first, with what is missing, before any work
    import transformers

    stage_dir, checkpoint_dir = Path(stage_dir), Path(checkpoint_dir)
    data_dir = dataset_dir(Path(curate_dir))
    train_rows = read_split(data_dir / "train.jsonl")
    val_rows = read_split(data_dir / "val.jsonl") if (data_dir / "val.jsonl").is_file() else []
    if not train_rows:
        raise DatasetError(f"{data_dir / 'train.jsonl'} has no examples")

    transformers.set_seed(train.seed)
    source = student_source(train)
    model, tokenizer = load_base(train, recipe, source)
    train_rows = pack_by_context(tokenizer, train_rows, train.turns_per_example, train.max_length, train.seed)
    val_rows = pack_by_context(tokenizer, val_rows, train.turns_per_example, train.max_length, train.seed)
    enc_train = encode_rows(tokenizer, train_rows, train.max_length)
    enc_val = encode_rows(tokenizer, val_rows[: recipe.max_eval_items], train.max_length)
    if not enc_train.input_ids:
        raise DatasetError(
            f"none of the {len(train_rows)} training examples fits finetune.max_length={train.max_length} tokens "
            f"with an answer to learn: raise finetune.max_length or shorten the contexts"
        )
    if enc_train.dropped_too_long:
        logger.warning(
            "%d of %d training examples are longer than finetune.max_length=%d tokens and are left out",
            enc_train.dropped_too_long,
            len(train_rows),
            train.max_length,
        )
    model = add_lora(model, train, recipe)

    resume_from = prepare_checkpoint_dir(checkpoint_dir, _fingerprint(params, recipe, source, data_dir))
    if resume_from is not None:
        logger.warning("resuming from %s", resume_from)
    trainer = build_trainer(
        model,
        tokenizer,
        enc_train,
        enc_val,
        train,
        recipe,
        checkpoint_dir,
        [run_log_callback(), *(callbacks or [])],
        resuming=resume_from is not None,
    )
    if recipe.device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()
    trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    # The Trainer's mixed-precision wrapper (autocast around forward) stays on the model after training; drop it
    # so the in-memory model computes exactly as the saved adapter does when reloaded for inference.
    model = trainer.accelerator.unwrap_model(trainer.model, keep_fp32_wrapper=False)

    stage_dir.mkdir(parents=True, exist_ok=True)
    adapter_dir = stage_dir / "adapter"
    model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    log = train_log(trainer.state.log_history)
    log.write_csv(stage_dir / "train_log.csv")
    peak_gb, peak_kind = _peak_memory(recipe.device)

    exports: dict[str, Any] = {}
    if export:
        merged_dir = stage_dir / "export" / "merged_16bit"
        if recipe.export_merged:
            exports["merged_16bit"] = export_merged(model, tokenizer, merged_dir, recipe)
        exports["gguf"] = export_gguf(stage_dir / "export" / "gguf", recipe, merged_dir, adapter_dir, source)
        for (
            entry
        ) in exports.values():  # relative: the stage folder is built under a temporary name, then renamed
            if "path" in entry:
                entry["path"] = str(Path(entry["path"]).relative_to(stage_dir))

    summary = _summarize(
        params, recipe, source, model, trainer, log, enc_train, enc_val, train_rows, val_rows,
        peak_gb, peak_kind, started, resume_from, exports, adapter_dir,
    )  # fmt: skip
    paper = stage_dir / "paper"
    figure_4(
        log,
        paper / "figure_4.png",
        f"Fine-tuning {Path(source).name if train.student != 'hub' else source} "
        f"({recipe.backend}, LoRA r={train.lora_r})",
        answers_only=train.responses_only,
    )
    write_table(
        table_4(_table_rows(summary, train, recipe)),
        paper,
        "table_4",
        "Table 4. Fine-tuning configuration and training cost",
    )
    config = {"finetune": train.model_dump(mode="json"), "recipe": asdict(recipe), "summary": summary}
    config["rope_scaling_applied"] = effective_rope_scaling(train, source)
    (stage_dir / "train_config.json").write_text(
        json.dumps(
            config,
            indent=2,
            default=str,
        )
    )
    return FinetuneResult(model=model, tokenizer=tokenizer, trainer=trainer, summary=summary)


def _summarize(
    params, recipe, source, model, trainer, log, enc_train: Encoded, enc_val: Encoded, train_rows, val_rows,
    peak_gb, peak_kind, started, resume_from, exports, adapter_dir,
) -> dict[str, Any]:  # fmt: skip
    train = params.finetune
    steps = int(trainer.state.global_step)
    train_s = _last(log, "train_s") or 0.0
    walls = [e["wall_s"] for e in trainer.state.log_history if e.get("wall_s") is not None]
    wall_s = max(walls) if walls else time.perf_counter() - started  # all sessions, evaluation included
    tokens = _last(log, "num_tokens")
    tokens_estimated = tokens is None
    if tokens is None:  # backends that don't log TRL's num_tokens: mean example length x examples seen
        mean_len = enc_train.n_tokens / max(1, len(enc_train.input_ids))
        tokens = mean_len * steps * train.batch_size * train.grad_accum
    try:
        trainable, total = model.get_nb_trainable_parameters()
    except AttributeError:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
    frozen = next((p for p in model.parameters() if not p.requires_grad), None)
    args = trainer.args
    val_losses = log["val_loss"].drop_nulls()
    hours = wall_s / 3600
    effective_batch = train.batch_size * train.grad_accum
    return {
        "backend": recipe.backend,
        "device": recipe.device,
        "device_name": _device_name(recipe.device),
        "student": train.student,
        "student_source": source,
        "steps": steps,
        "train_examples": len(enc_train.input_ids),
        "train_examples_dropped_too_long": enc_train.dropped_too_long,
        "train_examples_in_file": len(train_rows),
        "val_examples": len(enc_val.input_ids),
        "val_examples_in_file": len(val_rows),
        "epochs": steps * effective_batch / max(1, len(enc_train.input_ids)),
        "weights_dtype": "4-bit NF4"
        if is_4bit(model)
        else (str(frozen.dtype).replace("torch.", "") if frozen is not None else None),
        "autocast": "bf16" if args.bf16 else ("fp16" if args.fp16 else "none"),
        "trainable_params": int(trainable),
        "total_params": int(total),
        "final_train_loss": _last(log, "loss"),
        "first_val_loss": float(val_losses[0]) if len(val_losses) else None,
        "final_val_loss": float(val_losses[-1]) if len(val_losses) else None,
        "best_val_loss": float(val_losses.min()) if len(val_losses) else None,
        "train_s": train_s,
        "wall_s": wall_s,
        "stage_wall_s": time.perf_counter() - started,
        "s_per_step": train_s / steps if steps else None,
        "train_tokens": tokens,
        "tokens_estimated": tokens_estimated,
        "tokens_per_s": tokens / train_s if train_s else None,
        "peak_memory_gb": peak_gb,
        "peak_memory_kind": peak_kind,
        "device_hours": hours,
        "gpu_hour_usd": train.gpu_hour_usd,
        "train_cost_usd": hours * train.gpu_hour_usd,
        "resumed_from": resume_from.name if resume_from else None,
        "adapter_dir": str(adapter_dir),
        "exports": exports,
    }


def _table_rows(s: dict[str, Any], train, recipe: Recipe) -> list[tuple[str, Any, Any]]:
    quant = "4-bit NF4 (QLoRA)" if recipe.load_in_4bit else "16-bit weights (LoRA)"
    precision = f"{s['weights_dtype']} frozen weights, {s['autocast']} autocast"
    hours_label = "GPU-hours" if recipe.device == "cuda" else "device-hours (CPU, priced at the GPU rate)"
    exports = "; ".join(f"{k}: {v['status']}" + (f" ({v['reason'].split(';')[0]})" if v.get("reason") else "")
                        for k, v in s["exports"].items()) or "not run"  # fmt: skip
    checkpointing = {False: "off", True: "on", "unsloth": "on (Unsloth offloaded)"}[
        recipe.gradient_checkpointing
    ]
    return [
        ("student", s["student_source"] if s["student"] == "hub" else s["student"], PAPER_STUDENT),
        ("method", f"{quant}, {recipe.backend} backend", PAPER_METHOD),
        ("device", s["device_name"], None),
        ("LoRA r / alpha / dropout", f"{train.lora_r} / {train.lora_alpha} / {train.lora_dropout:g}", None),
        ("target modules", train.target_modules, None),
        ("trainable parameters", s["trainable_params"], None),
        (
            "trainable share of all parameters (%)",
            100.0 * s["trainable_params"] / max(1, s["total_params"]),
            None,
        ),
        (
            "learning rate / scheduler / warmup steps",
            f"{train.lr:g} / {train.scheduler} / {train.warmup_steps}",
            None,
        ),
        ("optimizer steps", s["steps"], None),
        ("batch size x gradient accumulation", f"{train.batch_size} x {train.grad_accum}", None),
        ("max length (tokens)", train.max_length, None),
        ("precision / gradient checkpointing", f"{precision} / {checkpointing}", None),
        ("loss on", "assistant answers only" if train.responses_only else "whole conversation", None),
        ("questions per training example (at most)", train.turns_per_example, None),
        (
            "training examples (left out: too long)",
            f"{s['train_examples']:,} ({s['train_examples_dropped_too_long']:,})",
            None,
        ),
        ("validation examples", s["val_examples"], None),
        ("epochs", s["epochs"], None),
        ("final training loss", s["final_train_loss"], None),
        (
            "validation loss: first / final / best",
            " / ".join(
                "" if v is None else f"{v:.3f}"
                for v in (s["first_val_loss"], s["final_val_loss"], s["best_val_loss"])
            ),
            None,
        ),
        ("wall time (s)", s["wall_s"], None),
        ("optimizer-step time (s)", s["train_s"], None),
        ("seconds per step", s["s_per_step"], None),
        ("tokens per second" + (" (estimated)" if s["tokens_estimated"] else ""), s["tokens_per_s"], None),
        (f"peak memory (GiB, {s['peak_memory_kind']})", s["peak_memory_gb"], None),
        (hours_label, s["device_hours"], None),
        (f"estimated cost (USD at ${s['gpu_hour_usd']:g}/h)", s["train_cost_usd"], None),
        ("exports", exports, None),
    ]


def finetune_run(curate_dir: Path, params: Params, stage_dir: Path, checkpoint_dir: Path) -> dict[str, Any]:
    """Fine-tune the student on `<curate_dir>/dataset/{train,val}.jsonl`; write the adapter, train_log.csv,
    figure 4 and table 4 under `stage_dir`, checkpoints under `checkpoint_dir`. Returns the training summary."""
    return train_student(curate_dir, params, stage_dir, checkpoint_dir).summary


class FinetuneRecord(StageRecord):
    """`train_cost_usd` is the cost stage's measured one-time training cost."""

    backend: str
    device: str
    steps: int
    train_examples: int
    trainable_params: int
    first_val_loss: float | None
    final_val_loss: float | None
    best_val_loss: float | None
    s_per_step: float
    tokens_per_s: float
    peak_memory_gb: float
    device_hours: float
    train_cost_usd: float
    exports: dict[str, Any]


def run(stage: Stage) -> StageResult:
    """The 04_finetune stage (package `train`; checkpoints outside the stage folder, so a re-run can resume)."""
    summary = finetune_run(
        stage.input("curate"), stage.params, stage.dir, stage.run_dir / "checkpoints" / "finetune"
    )
    record = FinetuneRecord.from_summary(summary)
    record.write(stage.dir)
    return StageResult(record, {"summary": summary})
