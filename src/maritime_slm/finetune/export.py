"""Exports of the tuned student: merged 16-bit weights and GGUF (for llama.cpp).

GGUF comes from llama.cpp's own converters and quantizer (`maritime_slm.finetune.gguf`), cached at set-up from the
llama-cpp-python sdist of the installed version, so it works offline on any platform. A skipped or failed export is
recorded with its reason, never silent.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from maritime_slm.finetune.backend import Recipe

logger = logging.getLogger(__name__)


def _result(status: str, path: Path | None = None, reason: str = ""):
    out: dict[str, Any] = {"status": status}
    if path is not None:
        out["path"] = str(path)
    if reason:
        out["reason"] = reason
    return out


def _skip(what: str, reason: str) -> dict[str, Any]:
    logger.warning("%s export skipped: %s", what, reason)
    return _result("skipped", reason=reason)


def is_4bit(model) -> bool:
    return any(type(m).__name__ == "Linear4bit" for m in model.modules())


def export_merged(model, tokenizer, out_dir: Path, recipe: Recipe) -> dict[str, Any]:
    """Base + LoRA merged into 16-bit weights (a plain transformers folder)."""
    if recipe.backend == "unsloth":
        if recipe.device == "cpu" and is_4bit(model):
            return _skip("merged 16-bit", "Unsloth's CPU backend can't merge LoRA into a 4-bit base")
        model.save_pretrained_merged(str(out_dir), tokenizer, save_method="merged_16bit")
        return _result("done", out_dir)
    if is_4bit(model):
        return _skip(
            "merged 16-bit", "the hf backend doesn't merge LoRA into a 4-bit base (reload it in 16-bit)"
        )
    import torch

    merged = copy.deepcopy(model).merge_and_unload()
    half = torch.bfloat16 if (recipe.device == "cpu" or recipe.bf16) else torch.float16
    merged.to(half).save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return _result("done", out_dir)


def _files(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """Names and sizes, no absolute paths: the stage folder is built under a temporary name and renamed."""
    return {p.name: {"bytes": p.stat().st_size} for p in paths}


def export_gguf(
    out_dir: Path, recipe: Recipe, merged_dir: Path | None, adapter_dir: Path | None, base_dir: str | None
) -> dict[str, Any]:
    """The tuned student (merged) as GGUF F16, `recipe.gguf_quantization` and Q4_K_M; the adapter as a GGUF adapter;
    the base student the same way as the tuned one (what `serve --model base` needs).

    Each step that fails is recorded with its reason and the others still run: the trained adapter is already
    saved, and a conversion failure must neither lose it nor pass unnoticed.
    """
    from maritime_slm.finetune import gguf

    quants = list(dict.fromkeys(q.lower() for q in (recipe.gguf_quantization, "q4_k_m") if q))
    made: list[Path] = []
    failures: list[str] = []

    def step(what: str, make) -> Path | None:
        try:
            path = make()
        except Exception as exc:
            reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            logger.error("GGUF export of %s failed: %s", what, reason)
            failures.append(f"{what}: {reason}")
            return None
        made.append(path)
        return path

    def model_and_quants(name: str, folder: Path) -> Path | None:
        f16 = step(f"{name} F16", lambda: gguf.convert_model(folder, out_dir / f"{name}.F16.gguf"))
        for q in quants if f16 else []:
            step(f"{name} {q}", lambda q=q: gguf.quantize(f16, out_dir / f"{name}.{q.upper()}.gguf", q))
        return f16

    try:
        gguf.converters_dir()
    except gguf.GGUFToolingError as exc:
        logger.error("GGUF export failed: %s", exc)
        return _result("failed", reason=str(exc))
    merged = merged_dir if merged_dir is not None and (merged_dir / "config.json").is_file() else None
    if merged is not None:
        model_and_quants("student", merged)
    else:
        failures.append("student: needs the merged 16-bit export first")
    config_dir = merged or (
        Path(base_dir) if base_dir and (Path(base_dir) / "config.json").is_file() else None
    )
    if adapter_dir is None or not (adapter_dir / "adapter_config.json").is_file():
        failures.append(f"adapter: no LoRA adapter in {adapter_dir}")
    elif config_dir is None:
        failures.append(
            "adapter: needs a local folder with the base's config (merged export or base student)"
        )
    else:
        step("adapter", lambda: gguf.convert_adapter(adapter_dir, config_dir, out_dir / "adapter.F16.gguf"))
    if base_dir and (Path(base_dir) / "config.json").is_file():
        model_and_quants("base", Path(base_dir))
    elif base_dir:
        failures.append(f"base: {base_dir} is not a local model folder (a hub id is not fetched)")
    out = _result("failed" if failures else "done", out_dir, reason="; ".join(failures))
    out["files"] = _files(made)
    return out
