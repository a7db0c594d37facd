"""Loading the student (base, base + LoRA for training, base + saved adapter for inference) and batched generation.

Used by the finetune stage and by the evaluate stage (`load_for_inference`, `generate_answers`). Weights come from
`maritime_slm.models` (the SmolLM2 GGUF converted once, or the tiny random Qwen2) or, for `student: hub`, from the
Hugging Face cache / hub (the `paper` profile, on a GPU machine).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from maritime_slm.config import FinetuneParams, Params
from maritime_slm.finetune.backend import Recipe, derive_recipe, import_backend
from maritime_slm.finetune.chat import ensure_chat_template, split_prompt, stop_token_ids

logger = logging.getLogger(__name__)


def student_source(train: FinetuneParams) -> str:
    """Local folder (or hub id) of the student's base weights."""
    from maritime_slm import models

    if train.student == "tiny-random-qwen2":
        return str(models.tiny_qwen2_dir(train.seed))
    if train.student == "smollm2-135m-gguf":
        return str(models.smollm2_model_dir())
    if not train.model_name:
        raise ValueError(
            "finetune.student 'hub' needs finetune.model_name (e.g. unsloth/Qwen2.5-7B-Instruct-bnb-4bit)"
        )
    return train.model_name


def native_window(source: str) -> int | None:
    """The model's native context window: what its rotary embedding was trained on (before any scaling)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(source)
    rope = getattr(config, "rope_parameters", None) or {}
    return rope.get("original_max_position_embeddings") or getattr(config, "max_position_embeddings", None)


def effective_rope_scaling(train: FinetuneParams, source: str | None = None) -> dict[str, Any] | None:
    """The rope scaling the student runs with, the base and the tuned model alike: `finetune.rope_scaling` only when
    `finetune.max_length` exceeds the model's native window. Static scaling (YaRN) stretches every position, so a
    model whose texts fit its window would only lose short-context quality (Qwen's advice for Qwen2.5)."""
    if not train.rope_scaling:
        return None
    native = native_window(source or student_source(train))
    if native is not None and train.max_length <= native:
        logger.warning(
            "finetune.rope_scaling not applied: max_length %d fits the model's native window of %d tokens",
            train.max_length,
            native,
        )
        return None
    wanted = dict(train.rope_scaling)
    if "type" in wanted and "rope_type" not in wanted:
        wanted["rope_type"] = wanted.pop("type")
    if native is not None:
        wanted.setdefault("original_max_position_embeddings", native)
    return wanted


def _rope_kwargs(source: str, train: FinetuneParams) -> dict[str, Any]:
    """The effective rope scaling as transformers 5 wants it: `rope_parameters` with `rope_type` and `rope_theta`."""
    wanted = effective_rope_scaling(train, source)
    if wanted is None:
        return {}
    from transformers import AutoConfig

    current = getattr(AutoConfig.from_pretrained(source), "rope_parameters", None) or {}
    return {"rope_parameters": {**current, **wanted}}


def _torch_dtype(name: str | None):
    import torch

    return None if name is None else getattr(torch, name)


def load_base(train: FinetuneParams, recipe: Recipe, source: str | None = None):
    """(model, tokenizer) of the base student with the ChatML template, on the recipe's device, not yet LoRA."""
    import_backend(recipe.backend)
    source = source or student_source(train)
    rope = _rope_kwargs(source, train)
    if recipe.backend == "unsloth":
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=source,
            max_seq_length=train.max_length,
            dtype=_torch_dtype(recipe.dtype),
            load_in_4bit=recipe.load_in_4bit,
            use_gradient_checkpointing=recipe.gradient_checkpointing,
            random_state=train.seed,
            **rope,
        )
    else:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        kwargs: dict[str, Any] = dict(rope)
        if recipe.load_in_4bit:
            from transformers import BitsAndBytesConfig

            compute = torch.bfloat16 if recipe.bf16 else (torch.float16 if recipe.fp16 else torch.float32)
            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=compute,
            )
        dtype = _torch_dtype(recipe.dtype) or (
            torch.bfloat16 if (recipe.device == "cuda" and recipe.bf16) else torch.float32
        )
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, device_map=recipe.device if recipe.device == "cuda" else None, **kwargs
        )
        tokenizer = AutoTokenizer.from_pretrained(source)
        if getattr(model.config, "pad_token_id", None) is None:
            model.config.pad_token_id = tokenizer.pad_token_id
    tokenizer, how = ensure_chat_template(tokenizer, recipe.backend)
    tokenizer.padding_side = "right"
    logger.info("student %s loaded with %s (%s)", source, recipe.backend, how)
    return model, tokenizer


def add_lora(model, train: FinetuneParams, recipe: Recipe):
    """LoRA adapters on `finetune.target_modules` (QLoRA when the base was loaded in 4-bit)."""
    if recipe.backend == "unsloth":
        from unsloth import FastLanguageModel

        return FastLanguageModel.get_peft_model(
            model,
            r=train.lora_r,
            lora_alpha=train.lora_alpha,
            lora_dropout=train.lora_dropout,
            target_modules=list(train.target_modules),
            bias="none",
            use_gradient_checkpointing=recipe.gradient_checkpointing,
            random_state=train.seed,
            max_seq_length=train.max_length,
        )
    import torch
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if recipe.load_in_4bit:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=bool(recipe.gradient_checkpointing)
        )
    elif recipe.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.config.use_cache = False
    config = LoraConfig(
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=train.lora_dropout,
        target_modules=list(train.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    torch.manual_seed(train.seed)
    return get_peft_model(model, config)


def load_for_inference(adapter_dir: str | Path | None, params: Params, recipe: Recipe | None = None):
    """(model, tokenizer) ready for `generate_answers`: the base student plus the saved LoRA adapter, or the base
    alone with `adapter_dir=None`. Same backend, dtype and chat template as training."""
    train = params.finetune
    recipe = recipe or derive_recipe(train)
    model, tokenizer = load_base(train, recipe)
    if adapter_dir is not None:
        from peft import PeftModel

        adapter_dir = Path(adapter_dir)
        if not (adapter_dir / "adapter_config.json").is_file():
            raise FileNotFoundError(f"no LoRA adapter at {adapter_dir} (expected adapter_config.json)")
        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=False)
        if (adapter_dir / "tokenizer_config.json").is_file():
            from transformers import AutoTokenizer

            tokenizer, _ = ensure_chat_template(
                AutoTokenizer.from_pretrained(str(adapter_dir)), recipe.backend
            )
    if recipe.backend == "unsloth":
        from unsloth import FastLanguageModel

        FastLanguageModel.for_inference(model)  # Unsloth's fast generation path on a GPU; eval mode on CPU
    prepare_for_generation(model, tokenizer)
    return model, tokenizer


def prepare_for_generation(model, tokenizer) -> None:
    """Eval mode, KV cache on, left padding (Unsloth's `for_inference` where the model has it)."""
    if hasattr(model, "for_inference"):
        model.for_inference()
    else:
        model.eval()
        inner = model
        for _ in range(3):
            if hasattr(inner, "config"):
                inner.config.use_cache = True
            inner = getattr(inner, "base_model", None) or getattr(inner, "model", None)
            if inner is None:
                break
    tokenizer.padding_side = "left"


def generate_answers(
    model,
    tokenizer,
    messages_batch: list[list[dict[str, Any]]],
    max_new_tokens: int = 128,
    batch_size: int = 8,
    progress: bool = True,
) -> list[str]:
    """Greedy answers, one per conversation, in input order.

    Each conversation is rendered with the training chat template up to the assistant turn (a trailing assistant
    message, e.g. a dataset row's reference answer, is dropped). Prompts are batched by length with left padding;
    generation stops at `<|im_end|>`.
    """
    import torch
    from tqdm.auto import tqdm

    if not messages_batch:
        return []
    prepare_for_generation(model, tokenizer)
    prompts = [
        tokenizer.apply_chat_template(split_prompt(m), tokenize=False, add_generation_prompt=True)
        for m in messages_batch
    ]
    lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
    order = sorted(range(len(prompts)), key=lambda i: -lengths[i])
    answers: list[str | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    stops = stop_token_ids(tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    bar = tqdm(total=len(prompts), desc="generating", unit="answer", disable=not progress)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        enc = tokenizer(
            [prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False
        ).to(device)
        with torch.inference_mode():
            out = model.generate(
                input_ids=enc["input_ids"],
                attention_mask=enc["attention_mask"],
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=stops,
                pad_token_id=pad_id,
            )
        new = out[:, enc["input_ids"].shape[1] :]
        for i, ids in zip(idx, new, strict=True):
            answers[i] = tokenizer.decode(
                ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
            ).strip()
        bar.update(len(idx))
    bar.close()
    return [a or "" for a in answers]
