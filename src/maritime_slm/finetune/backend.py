"""The two training backends and the settings derived from params and the machine.

- `unsloth`: Unsloth's FastLanguageModel + TRL SFTTrainer + `train_on_responses_only` (Unsloth's own CPU fallback
  when no GPU is visible). `import unsloth` must run before transformers/trl/peft are imported in the process.
- `hf`: plain transformers + peft + trl with the same recipe and data.

A backend that is asked for and cannot run raises `BackendUnavailable` naming what is missing: never a silent
fallback to the other one.
"""

from __future__ import annotations

import importlib
import logging
import sys
from dataclasses import dataclass, replace

from maritime_slm.config import FinetuneParams

logger = logging.getLogger(__name__)

BACKENDS = ("unsloth", "hf")
HF_MODULES = ("torch", "transformers", "peft", "trl", "datasets", "accelerate")


class BackendUnavailable(RuntimeError):
    """The requested training backend cannot be imported here; the message says what is missing and what to do."""


def import_backend(name: str) -> None:
    """Import a backend's libraries in the order it needs (Unsloth first); raise BackendUnavailable if one fails."""
    if name not in BACKENDS:
        raise ValueError(f"unknown finetune.backend '{name}' (backends: {', '.join(BACKENDS)})")
    if name == "unsloth":
        if "unsloth" not in sys.modules:
            early = [m for m in ("transformers", "trl", "peft") if m in sys.modules]
            if early:
                logger.warning(
                    "%s imported before unsloth in this process; Unsloth patches them at import and may not "
                    "apply fully. Call maritime_slm.finetune.import_backend('unsloth') before anything else.",
                    ", ".join(early),
                )
        try:
            unsloth = importlib.import_module("unsloth")
            unsloth.FastLanguageModel  # noqa: B018  (the loader; missing in a broken install)
        except Exception as exc:
            raise BackendUnavailable(
                f"finetune.backend='unsloth' was asked for, but `import unsloth` failed: {type(exc).__name__}: {exc}. "
                "Install it as `make setup` does (on CPU: `pip install --no-deps unsloth==2026.10.9 "
                "unsloth_zoo==2026.10.9` after the `train` extra; on a GPU: `pip install -e .[train,gpu]`), "
                "or run with finetune.backend=hf (plain transformers + peft + trl)."
            ) from exc
        return
    missing = []
    for module in HF_MODULES:
        try:
            importlib.import_module(module)
        except Exception as exc:
            missing.append(f"{module} ({type(exc).__name__}: {exc})")
    if missing:
        raise BackendUnavailable(
            f"finetune.backend='hf' was asked for, but these imports failed: {'; '.join(missing)}. "
            "Install the training extra: `pip install -c requirements/constraints.txt -e .[train]`."
        )
    if "unsloth" in sys.modules:
        logger.warning(
            "unsloth is already imported in this process: its patches to transformers/TRL also apply to the "
            "'hf' backend here. Run the hf backend in its own process for a clean baseline."
        )


def cpu_has_native_bf16() -> bool:
    """bf16 matmuls in hardware (AMX / AVX512-BF16 on x86, BF16 on Arm): Unsloth's rule for training in bf16 on CPU,
    applied to the hf backend too so both backends train at the same precision."""
    import platform

    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="ignore") as fh:
            flags = next(
                (line.split(":", 1)[1].split() for line in fh if line.startswith(("flags", "Features"))), []
            )
    except OSError:
        return False
    if platform.machine().lower() in ("x86_64", "amd64"):
        return bool({"amx_bf16", "avx512_bf16"} & set(flags))
    return "bf16" in flags


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class Recipe:
    """Everything the run needs beyond FinetuneParams, derived from params and the machine (see `derive_recipe`)."""

    backend: str
    device: str  # "cuda" | "cpu"
    load_in_4bit: bool
    gradient_checkpointing: bool | str  # False | True | "unsloth"
    dtype: str | None  # weights dtype: None = backend default
    bf16: bool | None  # None: left to the backend (Unsloth on CPU picks bf16 where it is native)
    fp16: bool
    optim: str
    weight_decay: float
    logging_steps: int
    eval_steps: int
    save_steps: int
    save_total_limit: int
    max_eval_items: int
    export_merged: bool
    gguf_quantization: str | None

    def with_(self, **changes) -> Recipe:
        return replace(self, **changes)


def derive_recipe(train: FinetuneParams, device: str | None = None) -> Recipe:
    """Derived defaults until FinetuneParams grows these fields.

    - gradient checkpointing: Unsloth's offloaded variant on a GPU; off on CPU, where memory is plentiful for
      these students and recomputation only costs time (measured: benchmarks/train.py).
    - precision: bf16 where the device has it natively (GPU with bf16; CPU with AMX / AVX512-BF16, where Unsloth
      picks it itself and the `hf` backend uses bf16 autocast over fp32 weights), else fp16 on older GPUs and fp32
      on other CPUs. Same precision, same learning curve: measured in benchmarks/train.py, fp32 learns faster per
      step early on and bf16 runs faster per step.
    - 4-bit: on GPU as params say; on CPU bitsandbytes' 4-bit works but is slower than 16-bit, so kept as asked.
    - logging every ~1 % of steps, validation and checkpoints `finetune.evals` times (default 10) over the run (at
      least every step for tiny runs): each validation pass costs CPU time a short run cannot spare.
    """
    device = device or ("cuda" if cuda_available() else "cpu")
    steps = train.max_steps
    eval_steps = max(1, steps // train.evals)
    on_gpu = device == "cuda"
    if on_gpu:
        import torch

        bf16 = bool(torch.cuda.is_bf16_supported())
        fp16 = not bf16
    else:
        bf16, fp16 = (None if train.backend == "unsloth" else cpu_has_native_bf16()), False
    return Recipe(
        backend=train.backend,
        device=device,
        load_in_4bit=train.load_in_4bit,
        gradient_checkpointing=("unsloth" if train.backend == "unsloth" else True) if on_gpu else False,
        dtype=None,
        bf16=bf16,
        fp16=fp16,
        optim="adamw_8bit" if on_gpu else "adamw_torch_fused",
        weight_decay=0.01,
        logging_steps=max(1, steps // 100),
        eval_steps=eval_steps,
        save_steps=eval_steps,
        save_total_limit=2,
        max_eval_items=256,
        export_merged=True,
        gguf_quantization="q8_0",
    )
