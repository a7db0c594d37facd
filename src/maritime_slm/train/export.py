"""Exports of the tuned student: merged 16-bit weights and GGUF (for llama.cpp), where the platform allows.

GGUF needs llama.cpp's converter. Unsloth downloads it on demand, which can't work offline; so the converter is
used only where it is already on disk (Unsloth's `~/.unsloth/llama.cpp`, or `$UNSLOTH_LLAMA_CPP_PATH`), except on
a GPU machine, where Unsloth is allowed to fetch it. A skipped export is recorded with its reason, never silent.
"""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from maritime_slm.train.backend import Recipe

logger = logging.getLogger(__name__)


def _result(status: str, path: Path | None = None, reason: str = "", files: list[str] | None = None):
    out: dict[str, Any] = {"status": status}
    if path is not None:
        out["path"] = str(path)
    if reason:
        out["reason"] = reason
    if files:
        out["files"] = files
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


def llama_cpp_dir() -> Path:
    return Path(os.environ.get("UNSLOTH_LLAMA_CPP_PATH", Path.home() / ".unsloth" / "llama.cpp"))


def gguf_tooling() -> tuple[bool, str]:
    """(available offline, why not): llama.cpp's quantizer and converter where Unsloth looks for them."""
    folder = llama_cpp_dir()
    try:
        from unsloth_zoo.llama_cpp import check_llama_cpp

        check_llama_cpp(str(folder))
        return True, ""
    except ImportError:
        converter = folder / "convert_hf_to_gguf.py"
        if converter.is_file():
            return True, ""
        return False, f"llama.cpp's convert_hf_to_gguf.py not found in {folder}"
    except Exception as exc:
        return False, f"llama.cpp tooling not found in {folder} ({str(exc).splitlines()[0]})"


def export_gguf(model, tokenizer, out_dir: Path, recipe: Recipe, merged_dir: Path | None) -> dict[str, Any]:
    """GGUF at `recipe.gguf_quantization` (q8_0 by default), through llama.cpp's converter."""
    method = recipe.gguf_quantization
    if not method:
        return _skip("GGUF", "no quantization method configured")
    available, why = gguf_tooling()
    if not available and recipe.device != "cuda":
        return _skip("GGUF", f"{why}; offline, Unsloth can't download it (set UNSLOTH_LLAMA_CPP_PATH)")
    try:
        if recipe.backend == "unsloth":
            if recipe.device == "cpu" and is_4bit(model):
                return _skip("GGUF", "Unsloth's CPU backend can't merge LoRA into a 4-bit base")
            files = model.save_pretrained_gguf(str(out_dir), tokenizer, quantization_method=method)
            files = [str(f) for f in (files if isinstance(files, list | tuple) else [files])]
            return _result("done", out_dir, files=files)
        if merged_dir is None or not (merged_dir / "config.json").is_file():
            return _skip("GGUF", "needs the merged 16-bit export first")
        converter = llama_cpp_dir() / "convert_hf_to_gguf.py"
        if not converter.is_file():
            return _skip("GGUF", f"llama.cpp's converter not found at {converter}")
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"model.{method.upper()}.gguf"
        subprocess.run(
            [sys.executable, str(converter), str(merged_dir), "--outtype", method, "--outfile", str(target)],
            check=True,
            capture_output=True,
            text=True,
        )
        return _result("done", out_dir, files=[str(target)])
    except Exception as exc:
        # Training is done and saved; a failed GGUF conversion must not lose it, but it is reported loudly.
        logger.error("GGUF export failed: %s: %s", type(exc).__name__, exc)
        return _result(
            "failed", reason=f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
