"""The SFT trainer of each backend, its config, the run log callback and checkpoint bookkeeping.

Both backends train on the same examples with the same labels (loss on assistant answers only):
- `unsloth`: TRL's SFTTrainer (as patched by Unsloth) on the `messages`, then Unsloth's `train_on_responses_only`.
- `hf`: TRL's SFTTrainer on pre-tokenized `input_ids` + `labels` (TRL uses a given `labels` column as is). TRL 1.15
  computes its loss through a fused LM head whose kernel is Triton-only (None on CPU); `PlainSFTTrainer` uses the
  model's own loss (`transformers.Trainer.compute_loss`) wherever that kernel can't run.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from maritime_slm.config import FinetuneParams
from maritime_slm.finetune.backend import Recipe
from maritime_slm.finetune.chat import INSTRUCTION_PART, RESPONSE_PART
from maritime_slm.finetune.data import Encoded

logger = logging.getLogger(__name__)

RUN_FILE = "run.json"


def sft_config(train: FinetuneParams, recipe: Recipe, output_dir: Path, has_eval: bool, resuming: bool):
    from trl import SFTConfig

    kwargs: dict[str, Any] = {}
    if recipe.bf16 is not None:
        kwargs["bf16"] = recipe.bf16
    if recipe.fp16:
        kwargs["fp16"] = True
    if not (recipe.backend == "unsloth" and recipe.device == "cuda"):
        # Unsloth on a GPU handles checkpointing itself ("unsloth" offloading); elsewhere say it explicitly,
        # because TRL 1.x turns it on by default.
        kwargs["gradient_checkpointing"] = bool(recipe.gradient_checkpointing)
        if recipe.gradient_checkpointing:
            kwargs["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if recipe.device == "cpu":
        kwargs["use_cpu"] = True
        kwargs["dataloader_pin_memory"] = False
    return SFTConfig(
        output_dir=str(output_dir),
        max_steps=train.max_steps,
        per_device_train_batch_size=train.batch_size,
        per_device_eval_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.lr,
        lr_scheduler_type=train.scheduler,
        warmup_steps=train.warmup_steps,
        weight_decay=recipe.weight_decay,
        optim=recipe.optim,
        seed=train.seed,
        data_seed=train.seed,
        logging_steps=recipe.logging_steps,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=recipe.eval_steps if has_eval else None,
        eval_on_start=has_eval and not resuming,
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit,
        max_length=train.max_length,
        packing=False,
        dataset_num_proc=None,
        report_to="none",
        disable_tqdm=False,
        **kwargs,
    )


def _plain_trainer_class():
    from transformers import Trainer
    from trl import SFTTrainer
    from trl.trainer import utils as trl_utils

    class PlainSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer; the model's own loss wherever TRL's fused (Triton-only) LM-head kernel can't run."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            device = inputs["input_ids"].device
            fused_ok = getattr(trl_utils, "_ChunkedLogProbFunction", None) is not None
            if fused_ok and device.type in ("cuda", "xpu"):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            inputs["use_cache"] = False
            result = Trainer.compute_loss(
                self, model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
            # TRL's `num_tokens` metric (non-padding tokens seen), as TRL's own loss keeps it
            if model.training and "attention_mask" in inputs:
                self._total_train_tokens += int(inputs["attention_mask"].sum().item())
                self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
            return result

    return PlainSFTTrainer


def build_trainer(
    model,
    tokenizer,
    train_data: Encoded,
    val_data: Encoded | None,
    train: FinetuneParams,
    recipe: Recipe,
    output_dir: Path,
    callbacks: list | None,
    resuming: bool,
):
    from datasets import Dataset

    has_eval = val_data is not None and len(val_data.input_ids) > 0
    config = sft_config(train, recipe, output_dir, has_eval, resuming)
    if recipe.backend == "unsloth":
        from trl import SFTTrainer

        def as_dataset(enc: Encoded) -> Dataset:
            return Dataset.from_list([{"messages": r["messages"]} for r in enc.rows])

        trainer = SFTTrainer(
            model=model,
            processing_class=tokenizer,
            train_dataset=as_dataset(train_data),
            eval_dataset=as_dataset(val_data) if has_eval else None,
            args=config,
            callbacks=callbacks,
        )
        if train.responses_only:
            from unsloth.chat_templates import train_on_responses_only

            trainer = train_on_responses_only(
                trainer, instruction_part=INSTRUCTION_PART, response_part=RESPONSE_PART
            )
        return trainer

    def as_tokens(enc: Encoded) -> Dataset:
        labels = enc.labels if train.responses_only else [list(ids) for ids in enc.input_ids]
        return Dataset.from_dict({"input_ids": enc.input_ids, "labels": labels})

    return _plain_trainer_class()(
        model=model,
        processing_class=tokenizer,
        train_dataset=as_tokens(train_data),
        eval_dataset=as_tokens(val_data) if has_eval else None,
        args=config,
        callbacks=callbacks,
    )


def run_log_callback():
    """A TrainerCallback that stamps each log entry with cumulative optimizer-step time (`train_s`) and wall time
    (`wall_s`), continuing the totals of earlier sessions when a run resumes from a checkpoint."""
    from transformers import TrainerCallback

    class RunLog(TrainerCallback):
        def __init__(self):
            self.train_s = self.offset_train = self.offset_wall = 0.0
            self.t_begin = time.perf_counter()
            self._t_step = None

        def on_train_begin(self, args, state, control, **kwargs):
            previous = [e for e in state.log_history if "train_s" in e]
            self.offset_train = previous[-1]["train_s"] if previous else 0.0
            self.offset_wall = previous[-1]["wall_s"] if previous else 0.0
            self.train_s = 0.0
            self.t_begin = time.perf_counter()

        def on_step_begin(self, args, state, control, **kwargs):
            self._t_step = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if self._t_step is not None:
                self.train_s += time.perf_counter() - self._t_step
                self._t_step = None

        def on_log(self, args, state, control, logs=None, **kwargs):
            if state.log_history:
                entry = state.log_history[-1]
                entry["train_s"] = round(self.offset_train + self.train_s, 4)
                entry["wall_s"] = round(self.offset_wall + time.perf_counter() - self.t_begin, 4)

    return RunLog()


# ---------------------------------------------------------------- checkpoints
def last_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete checkpoint (trainer state written, which the Trainer does last)."""
    if not checkpoint_dir.is_dir():
        return None
    found = []
    for path in checkpoint_dir.glob("checkpoint-*"):
        suffix = path.name.split("-", 1)[1]
        if path.is_dir() and suffix.isdigit() and (path / "trainer_state.json").is_file():
            found.append((int(suffix), path))
    return max(found)[1] if found else None


def prepare_checkpoint_dir(checkpoint_dir: Path, fingerprint: dict[str, Any]) -> Path | None:
    """Keep checkpoints of the same run (same params, data and backend) to resume from; clear any other run's."""
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    run_file = checkpoint_dir / RUN_FILE
    previous = json.loads(run_file.read_text()) if run_file.is_file() else None
    if previous is not None and previous.get("fingerprint") != fingerprint:
        stale = sorted(p.name for p in checkpoint_dir.glob("checkpoint-*"))
        if stale:
            logger.warning(
                "checkpoints in %s come from a different run (params, data or backend changed): removing %s",
                checkpoint_dir,
                ", ".join(stale),
            )
        for path in checkpoint_dir.glob("checkpoint-*"):
            shutil.rmtree(path)
    elif previous is None and any(checkpoint_dir.glob("checkpoint-*")):
        logger.warning("checkpoints in %s have no run record: removing them", checkpoint_dir)
        for path in checkpoint_dir.glob("checkpoint-*"):
            shutil.rmtree(path)
    run_file.write_text(json.dumps({"fingerprint": fingerprint}, indent=2, sort_keys=True))
    return last_checkpoint(checkpoint_dir)
