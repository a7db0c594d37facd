"""Training scenarios run in a fresh interpreter each (`python tests/finetune/worker.py SCENARIO BACKEND OUT_DIR`).

Each backend gets its own process, as in a notebook kernel: `import unsloth` first for the unsloth backend, and no
Unsloth patches leaking into the plain hf backend. Results go to OUT_DIR/result.json for the pytest side to check.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def check_labels(result, backend: str) -> dict:
    """Loss masking: labels are -100 everywhere but the assistant answer (through its <|im_end|>)."""
    from maritime_slm.finetune.chat import IGNORE_INDEX, RESPONSE_PART, encode_for_training, masked_text

    trainer, tokenizer = result.trainer, result.tokenizer
    rows = [json.loads(line) for line in (OUT / "curate/dataset/train.jsonl").read_text().splitlines()]
    header = tokenizer(RESPONSE_PART, add_special_tokens=False)["input_ids"]
    report = {"masked_texts_ok": True, "prefix_masked": True, "same_as_reference": True, "n": 0}
    for i, row in enumerate(rows):
        ex = trainer.train_dataset[i]
        ids, labels = list(ex["input_ids"]), list(ex["labels"])
        expected = row["messages"][-1]["content"] + "<|im_end|>"
        report["masked_texts_ok"] &= masked_text(tokenizer, ids, labels) == expected
        start = next(j for j in range(len(ids)) if ids[j : j + len(header)] == header) + len(header)
        end = ids.index(tokenizer.convert_tokens_to_ids("<|im_end|>"), start)  # the answer's <|im_end|>
        report["prefix_masked"] &= all(lab == IGNORE_INDEX for lab in labels[:start] + labels[end + 1 :])
        report["prefix_masked"] &= labels[start : end + 1] == ids[start : end + 1]
        ref_ids, ref_labels = encode_for_training(tokenizer, row["messages"])
        report["same_as_reference"] &= (ref_ids, ref_labels) == (ids, labels)
        report["n"] += 1
    report["padding_masked"], report["batch_has_padding"] = True, False
    for batch in trainer.get_train_dataloader():
        pad = batch["attention_mask"] == 0
        report["padding_masked"] &= bool((batch["labels"][pad] == IGNORE_INDEX).all())
        report["batch_has_padding"] |= bool(pad.any())
    return report


def logits(model, tokenizer, messages) -> list:
    import torch

    from maritime_slm.finetune.chat import split_prompt

    text = tokenizer.apply_chat_template(split_prompt(messages), tokenize=False, add_generation_prompt=True)
    enc = tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        return model(**enc).logits[0, -1].float().tolist()


def smoke(backend: str) -> dict:
    from train_testdata import smoke_params, write_dataset

    from maritime_slm.finetune import generate_answers, load_for_inference, train_student

    curate = write_dataset(OUT / "curate")
    params = smoke_params(f"finetune.backend={backend}")
    result = train_student(curate, params, OUT / "stage", OUT / "checkpoints")
    out = {"summary": result.summary, "labels": check_labels(result, backend)}

    test = [json.loads(line)["messages"] for line in (curate / "dataset/test.jsonl").read_text().splitlines()]
    in_memory = generate_answers(result.model, result.tokenizer, test, max_new_tokens=12, batch_size=3)
    tuned_logits = logits(result.model, result.tokenizer, test[0])
    del result

    model, tokenizer = load_for_inference(OUT / "stage" / "adapter", params)
    reloaded = generate_answers(model, tokenizer, test, max_new_tokens=12, batch_size=3)
    reloaded_logits = logits(model, tokenizer, test[0])
    one_by_one = generate_answers(model, tokenizer, test[:2], max_new_tokens=12, batch_size=1)
    base_model, base_tokenizer = load_for_inference(None, params)
    base_logits = logits(base_model, base_tokenizer, test[0])
    diff = lambda a, b: max(abs(x - y) for x, y in zip(a, b, strict=True))  # noqa: E731
    out.update(
        in_memory=in_memory,
        reloaded=reloaded,
        one_by_one=one_by_one,
        max_logit_diff_reloaded=diff(tuned_logits, reloaded_logits),
        max_logit_diff_base=diff(tuned_logits, base_logits),
        peft_type=type(model).__name__,
    )
    return out


def resume(backend: str) -> dict:
    """An uninterrupted run, then the same run crashed after step 3 and re-run: same losses, same adapter."""
    import torch
    from safetensors.torch import load_file
    from train_testdata import smoke_params, write_dataset
    from transformers import TrainerCallback

    from maritime_slm.finetune import train_student

    class Crash(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                raise KeyboardInterrupt("simulated crash after step 3")

    curate = write_dataset(OUT / "curate")
    params = smoke_params(f"finetune.backend={backend}")
    full = train_student(curate, params, OUT / "full", OUT / "ckpt_full", export=False).summary
    crashed = False
    try:
        train_student(curate, params, OUT / "stage", OUT / "ckpt", callbacks=[Crash()], export=False)
    except KeyboardInterrupt:
        crashed = True
    after_crash = sorted(p.name for p in (OUT / "ckpt").glob("checkpoint-*"))
    resumed = train_student(curate, params, OUT / "stage", OUT / "ckpt", export=False).summary
    again = train_student(curate, params, OUT / "again", OUT / "ckpt", export=False).summary
    changed = train_student(curate, smoke_params(f"finetune.backend={backend}", "finetune.max_steps=2"),
                            OUT / "changed", OUT / "ckpt", export=False).summary  # fmt: skip

    a = load_file(str(OUT / "full/adapter/adapter_model.safetensors"))
    b = load_file(str(OUT / "stage/adapter/adapter_model.safetensors"))
    max_diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    lora_b_norm = sum(float(t.float().norm()) for k, t in a.items() if "lora_B" in k)
    return {
        "crashed": crashed,
        "after_crash": after_crash,
        "full": full,
        "resumed": resumed,
        "again": again,
        "changed": changed,
        "max_adapter_diff": max_diff,
        "lora_b_norm": lora_b_norm,
        "torch_threads": torch.get_num_threads(),
    }


if __name__ == "__main__":
    scenario, backend, out_dir = sys.argv[1:4]
    from maritime_slm.finetune import import_backend

    import_backend(backend)  # Unsloth before transformers/trl/peft, as in a notebook
    sys.path.insert(0, str(HERE))
    OUT = Path(out_dir)
    data = {"smoke": smoke, "resume": resume}[scenario](backend)
    data["modules"] = {"unsloth_imported": "unsloth" in sys.modules}
    (OUT / "result.json").write_text(json.dumps(data, indent=2, default=str))
