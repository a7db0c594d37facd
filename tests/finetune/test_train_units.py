"""Unit tests of the training package that need no training: chat masking, data checks, logs, artifacts,
checkpoint bookkeeping and the refusal of a backend that can't run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from train_testdata import qa_row, smoke_params, write_dataset

from maritime_slm.finetune.backend import (
    BackendUnavailable,
    cpu_has_native_bf16,
    derive_recipe,
    import_backend,
)
from maritime_slm.finetune.chat import (
    CHATML_TEMPLATE,
    IGNORE_INDEX,
    IM_END,
    encode_for_training,
    ensure_chat_template,
    masked_text,
    split_prompt,
)
from maritime_slm.finetune.data import DatasetError, encode_rows, read_split
from maritime_slm.finetune.figures import figure_4, table_4, train_log
from maritime_slm.finetune.trainer import last_checkpoint, prepare_checkpoint_dir


@pytest.fixture(scope="module")
def tokenizer():
    from maritime_slm.models import smollm2_tokenizer

    return smollm2_tokenizer()


# ---------------------------------------------------------------- chat template and loss masking
def test_loss_only_on_assistant_answer(tokenizer):
    row = qa_row(3, __import__("random").Random(0))
    ids, labels = encode_for_training(tokenizer, row["messages"])
    assert len(ids) == len(labels)
    answer = row["messages"][-1]["content"]
    assert masked_text(tokenizer, ids, labels) == answer + IM_END
    first = next(i for i, lab in enumerate(labels) if lab != IGNORE_INDEX)
    prompt = tokenizer.apply_chat_template(
        split_prompt(row["messages"]), tokenize=False, add_generation_prompt=True
    )
    assert tokenizer.decode(ids[:first]) == prompt  # everything before the answer is masked
    assert labels[-1] == IGNORE_INDEX and tokenizer.decode(ids[-1:]) == "\n"  # the newline after <|im_end|>
    kept = [i for i, lab in enumerate(labels) if lab != IGNORE_INDEX]
    assert kept == list(range(first, first + len(kept)))  # one contiguous span
    assert all(labels[i] == ids[i] for i in kept)


def test_every_assistant_turn_is_trained_and_odd_spacing_survives(tokenizer):
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "\n first answer"},
        {"role": "user", "content": "assistant\nnot an answer"},
        {"role": "assistant", "content": "second answer\nFinal answer: 7 kn"},
    ]
    ids, labels = encode_for_training(tokenizer, messages)
    text = masked_text(tokenizer, ids, labels)
    assert "first answer" in text and "second answer\nFinal answer: 7 kn" + IM_END in text
    assert "question" not in text and "not an answer" not in text and "sys" not in text


def test_chat_template_kept_or_set(tokenizer):
    tok, how = ensure_chat_template(tokenizer, "hf")
    assert "own" in how
    messages = qa_row(0, __import__("random").Random(0))["messages"]
    own = tok.apply_chat_template(messages, tokenize=False)
    plain = tok.apply_chat_template(messages, tokenize=False, chat_template=CHATML_TEMPLATE)
    assert own == plain  # with a system message, SmolLM2's template and ChatML render the same text

    class NoChatML:
        chat_template = None

        def get_vocab(self):
            return {"<s>": 0}

    with pytest.raises(ValueError, match="ChatML"):
        ensure_chat_template(NoChatML(), "hf")


# ---------------------------------------------------------------- data
def test_read_split_validates(tmp_path):
    path = tmp_path / "train.jsonl"
    good = qa_row(0, __import__("random").Random(0))
    path.write_text(json.dumps(good) + "\n\n" + "{not json\n")
    with pytest.raises(DatasetError, match=r"train.jsonl:3: not valid JSON"):
        read_split(path)
    bad = dict(good, messages=good["messages"][:2])
    path.write_text(json.dumps(bad) + "\n")
    with pytest.raises(DatasetError, match="last message must be the assistant"):
        read_split(path)
    with pytest.raises(DatasetError, match="run the curate stage"):
        read_split(tmp_path / "missing.jsonl")
    path.write_text(json.dumps(good) + "\n")
    assert read_split(path)[0]["final_answer"] == good["final_answer"]  # metadata kept


def test_too_long_examples_are_left_out(tokenizer, tmp_path):
    rows = read_split(write_dataset(tmp_path, n_train=6) / "dataset" / "train.jsonl")
    lengths = sorted(len(encode_for_training(tokenizer, r["messages"])[0]) for r in rows)
    enc = encode_rows(tokenizer, rows, max_length=lengths[2])
    assert enc.dropped_too_long == sum(n > lengths[2] for n in lengths) > 0
    assert len(enc.input_ids) == 6 - enc.dropped_too_long
    assert max(len(ids) for ids in enc.input_ids) <= lengths[2]


# ---------------------------------------------------------------- logs and paper artifacts
HISTORY = [
    {"eval_loss": 3.0, "epoch": 0, "step": 0, "wall_s": 1.0},
    {"loss": 2.5, "learning_rate": 1e-4, "grad_norm": 1.0, "num_tokens": 1000, "epoch": 0.5, "step": 1,
     "train_s": 2.0, "wall_s": 3.0},
    {"eval_loss": 2.4, "epoch": 0.5, "step": 1, "wall_s": 3.5},
    {"loss": 2.0, "learning_rate": 5e-5, "grad_norm": 0.5, "num_tokens": 3000, "epoch": 1.0, "step": 2,
     "train_s": 3.0, "wall_s": 4.5},
    {"train_runtime": 4.5, "train_loss": 2.25, "step": 2, "wall_s": 4.6},
]  # fmt: skip


def test_train_log_merges_train_and_val_rows():
    log = train_log(HISTORY)
    assert log["step"].to_list() == [0, 1, 2]
    assert log["loss"].to_list() == [None, 2.5, 2.0]
    assert log["val_loss"].to_list() == [3.0, 2.4, None]
    assert log["tokens_per_s"].to_list() == [None, 500.0, 2000.0]  # 1000 tok / 2 s, then 2000 tok / 1 s
    assert log["lr"].to_list() == [None, 1e-4, 5e-5]


def test_figure_and_table_files(tmp_path):
    png = figure_4(train_log(HISTORY), tmp_path / "paper" / "figure_4.png", "test run")
    assert png.stat().st_size > 10_000
    df = table_4(
        [("trainable parameters", 1234567, None), ("student", "tiny", "Qwen2.5-7B"), ("loss", 0.12345, None)]
    )
    assert df["this run"].to_list() == ["1,234,567", "tiny", "0.123"]
    assert df["paper reported"].to_list() == ["", "Qwen2.5-7B", ""]


# ---------------------------------------------------------------- checkpoints
def _fake_checkpoint(folder: Path, step: int, complete: bool = True) -> None:
    path = folder / f"checkpoint-{step}"
    path.mkdir(parents=True)
    if complete:
        (path / "trainer_state.json").write_text("{}")


def test_checkpoints_resumed_only_for_the_same_run(tmp_path):
    ckpt = tmp_path / "ckpt"
    assert prepare_checkpoint_dir(ckpt, {"lr": 1}) is None
    _fake_checkpoint(ckpt, 2)
    _fake_checkpoint(ckpt, 10)
    _fake_checkpoint(ckpt, 12, complete=False)  # killed while saving
    assert last_checkpoint(ckpt).name == "checkpoint-10"
    assert prepare_checkpoint_dir(ckpt, {"lr": 1}).name == "checkpoint-10"
    assert prepare_checkpoint_dir(ckpt, {"lr": 2}) is None  # another run's checkpoints are cleared
    assert not list(ckpt.glob("checkpoint-*"))


# ---------------------------------------------------------------- backends
def test_recipe_defaults_on_cpu():
    recipe = derive_recipe(smoke_params().finetune, device="cpu")
    assert recipe.device == "cpu" and recipe.gradient_checkpointing is False
    assert recipe.bf16 is None and recipe.optim == "adamw_torch_fused"
    hf = derive_recipe(smoke_params("finetune.backend=hf", "finetune.max_steps=300").finetune, device="cpu")
    assert (
        hf.bf16 is cpu_has_native_bf16()
        and hf.eval_steps == 30
        and hf.save_steps == 30
        and hf.logging_steps == 3
    )


def test_unavailable_unsloth_fails_clearly(monkeypatch, tmp_path):
    from maritime_slm.finetune import finetune_run

    monkeypatch.setitem(sys.modules, "unsloth", None)  # `import unsloth` now raises ImportError
    with pytest.raises(
        BackendUnavailable, match=r"finetune.backend='unsloth'.*import unsloth.*finetune.backend=hf"
    ):
        import_backend("unsloth")
    curate = write_dataset(tmp_path / "curate")
    with pytest.raises(BackendUnavailable, match="unsloth"):
        finetune_run(curate, smoke_params(), tmp_path / "stage", tmp_path / "ckpt")
    assert not (tmp_path / "stage").exists() and not (tmp_path / "ckpt").exists()  # failed before any work


def test_unavailable_hf_stack_fails_clearly(monkeypatch):
    monkeypatch.setitem(sys.modules, "peft", None)
    with pytest.raises(BackendUnavailable, match=r"finetune.backend='hf'.*peft"):
        import_backend("hf")


def test_unknown_backend_and_hub_without_name():
    from maritime_slm.finetune.model import student_source

    with pytest.raises(ValueError, match="unknown finetune.backend"):
        import_backend("tensorflow")
    with pytest.raises(ValueError, match="model_name"):
        student_source(smoke_params("finetune.student=hub").finetune)


def test_questions_about_one_context_become_one_conversation(tokenizer):
    """Packing: the first turn is a test-format row, later turns are `Question: ...` + answer, every answer is
    trained, no conversation mixes contexts or exceeds max_length, and no question is lost or repeated."""
    import random

    from maritime_slm.finetune.data import pack_by_context

    rows = []
    for c in range(3):
        base = qa_row(c, random.Random(c))
        for q in range(5):
            row = json.loads(json.dumps(base))
            row["id"], row["question"] = f"c{c}-q{q}", f"Question number {q} about context {c}?"
            row["messages"][1]["content"] = base["messages"][1]["content"].rsplit("Question: ", 1)[0] + (
                "Question: " + row["question"]
            )
            row["messages"][2]["content"] = f"Because {q}.\nFinal answer: {q} kn"
            rows.append(row)
    single = {r["id"]: r for r in rows}
    packed = pack_by_context(tokenizer, rows, max_turns=4, max_length=4096, seed=0)
    assert len(packed) == 6 and sorted(p["turns"] for p in packed) == [1, 1, 1, 4, 4, 4]
    ids = [i for p in packed for i in p["id"].split("+")]
    assert sorted(ids) == sorted(single)
    for p in packed:
        members = [single[i] for i in p["id"].split("+")]
        assert {m["context_id"] for m in members} == {p["context_id"]}
        assert p["messages"][:3] == members[0]["messages"]
        for k, m in enumerate(members[1:], start=1):
            assert p["messages"][1 + 2 * k] == {"role": "user", "content": "Question: " + m["question"]}
            assert p["messages"][2 + 2 * k] == m["messages"][-1]
        ids_, labels = encode_for_training(tokenizer, p["messages"])
        trained = masked_text(tokenizer, ids_, labels)
        assert all(m["messages"][-1]["content"] in trained for m in members)
    limit = max(len(encode_for_training(tokenizer, r["messages"])[0]) for r in rows) + 30
    tight = pack_by_context(tokenizer, rows, max_turns=5, max_length=limit, seed=0)
    assert all(len(encode_for_training(tokenizer, p["messages"])[0]) <= limit for p in tight)
    assert len(tight) > 3 and sum(p["turns"] for p in tight) == len(rows)
    assert pack_by_context(tokenizer, rows, max_turns=1, max_length=4096, seed=0) == rows
