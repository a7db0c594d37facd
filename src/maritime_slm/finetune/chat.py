"""The chat format the student is trained and queried with: ChatML (SmolLM2, Qwen2/2.5 and the tiny smoke model).

Loss masking follows Unsloth's `train_on_responses_only` with the ChatML parts below: a label is kept from the
token after `<|im_start|>assistant\\n` up to and including the turn's `<|im_end|>`; everything else (system,
user, the role headers, the newline after `<|im_end|>`, padding) is -100. `encode_for_training` is the same rule
written out for the plain `hf` backend, and the tests check that both give identical labels.
"""

from __future__ import annotations

from typing import Any

IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
INSTRUCTION_PART = "<|im_start|>user\n"
RESPONSE_PART = "<|im_start|>assistant\n"
IGNORE_INDEX = -100

# Unsloth's "chatml" template (unsloth/chat_templates.py), used when a tokenizer has no ChatML template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{'<|im_start|>user\n' + message['content'] + '<|im_end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}"
    "{{'<|im_start|>assistant\n' + message['content'] + '<|im_end|>\n' }}"
    "{% else %}"
    "{{ '<|im_start|>system\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)


def has_chatml_template(tokenizer) -> bool:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        template = template.get("default")
    return isinstance(template, str) and IM_START in template and IM_END in template


def ensure_chat_template(tokenizer, backend: str):
    """The tokenizer with a ChatML chat template and `<|im_end|>` ending generation; returns (tokenizer, how).

    The model's own template is kept when it is ChatML. Otherwise the `unsloth` backend applies
    `unsloth.chat_templates.get_chat_template(tokenizer, "chatml")` and the `hf` backend sets the same template.
    """
    vocab = tokenizer.get_vocab()
    missing = [t for t in (IM_START, IM_END) if t not in vocab]
    if missing:
        raise ValueError(
            f"the student's tokenizer has no {missing} token(s): the training recipe is ChatML "
            "(SmolLM2 / Qwen2.5 family); pick a ChatML student"
        )
    how = "model's own ChatML template"
    if not has_chatml_template(tokenizer):
        if backend == "unsloth":
            from unsloth.chat_templates import get_chat_template

            tokenizer = get_chat_template(tokenizer, chat_template="chatml", map_eos_token=False)
            how = "unsloth get_chat_template('chatml')"
        else:
            tokenizer.chat_template = CHATML_TEMPLATE
            how = "ChatML template (as unsloth's 'chatml')"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token if tokenizer.eos_token else IM_END
    return tokenizer, how


def stop_token_ids(tokenizer) -> list[int]:
    """Token ids that end an answer: `<|im_end|>` and the tokenizer's eos (they may differ, e.g. base Qwen)."""
    ids = [tokenizer.convert_tokens_to_ids(IM_END)]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def split_prompt(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation up to the answer: drops a trailing assistant turn (so dataset rows can be passed as is)."""
    if messages and messages[-1].get("role") == "assistant":
        return list(messages[:-1])
    return list(messages)


def assistant_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of assistant answers in a rendered ChatML conversation, each through its `<|im_end|>`."""
    spans, pos = [], 0
    while (found := text.find(RESPONSE_PART, pos)) >= 0:
        start = found + len(RESPONSE_PART)
        end = text.find(IM_END, start)
        end = len(text) if end < 0 else end + len(IM_END)
        spans.append((start, end))
        pos = end
    return spans


def encode_for_training(tokenizer, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """(input_ids, labels) of one conversation: the chat template's rendering, loss only on assistant answers."""
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    spans = assistant_spans(text)
    labels = [
        tok if any(a <= start < b for a, b in spans) else IGNORE_INDEX
        for tok, (start, _end) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
    ]
    return list(enc["input_ids"]), labels


def masked_text(tokenizer, input_ids: list[int], labels: list[int]) -> str:
    """The text the loss is computed on (for tests and for eyeballing the masking)."""
    return tokenizer.decode([t for t, lab in zip(input_ids, labels, strict=True) if lab != IGNORE_INDEX])
