"""Export: the chat format contract and the DatasetDict round trip."""

from __future__ import annotations

import json

from curate_testdata import hand_context, pair

from maritime_slm.answers import parse_final_answer
from maritime_slm.curate.export import STUDENT_SYSTEM_PROMPT, chat_messages, export_dataset, load_split


def test_message_format():
    msgs = chat_messages("CTX", "How many?", "Counting rows.", "3")
    assert msgs == [
        {"role": "system", "content": STUDENT_SYSTEM_PROMPT},
        {"role": "user", "content": "CTX\n\nQuestion: How many?"},
        {"role": "assistant", "content": "Counting rows.\nFinal answer: 3"},
    ]
    assert chat_messages("CTX", "How many?")[-1]["role"] == "user"  # the prompt for generation
    assert parse_final_answer(msgs[-1]["content"]) == "3"


def test_parse_final_answer():
    assert parse_final_answer("Speed is 12 kn.\nFinal answer: 12 kn\n") == "12 kn"
    assert parse_final_answer("final answer - 367000001 and 367000002") == "367000001 and 367000002"
    assert parse_final_answer("Final answer: 3\nFinal answer: 4") == "4"
    assert parse_final_answer("no marker here") is None
    # a looping model may put only separators after the marker; that is no answer, not a crash
    assert parse_final_answer("Final answer: \x1c") is None
    assert parse_final_answer("Final answer: \u2028\u2028") is None


def test_export_round_trip(tmp_path):
    from datasets import load_from_disk

    ctx = hand_context()
    contexts = {ctx["context_id"]: ctx}
    pairs = [
        pair(id="a", split="train", reasoning="The table lists 3 MMSIs."),
        pair(id="b", key="traffic.moving_count", final="2", split="test", question="How many are moving?"),
        pair(id="c", key="traffic.moving_count", final="2", split="train", revised_from="c0",
             question="How many vessels move?"),
    ]  # fmt: skip
    info = export_dataset(pairs, contexts, tmp_path / "dataset", progress=False)
    assert info["rows"] == {"train": 2, "val": 0, "test": 1}
    train = load_split(tmp_path / "dataset" / "train.jsonl")
    assert [r["id"] for r in train] == ["a", "c"]
    row = train[0]
    assert {"id", "context_id", "category", "teacher", "final_answer", "facts_ref", "messages"} <= set(row)
    assert (
        row["messages"][1]["content"] == ctx["text"] + "\n\nQuestion: How many vessels are in this snapshot?"
    )
    assert row["messages"][2]["content"] == "The table lists 3 MMSIs.\nFinal answer: 3"
    assert train[1]["revised_from"] == "c0"
    dd = load_from_disk(str(tmp_path / "dataset" / "hf"))
    assert set(dd) == {"train", "val", "test"} and len(dd["val"]) == 0
    for split in ("train", "test"):
        assert dd[split].to_list() == load_split(tmp_path / "dataset" / f"{split}.jsonl")
    assert json.loads(json.dumps(dd["train"][0]["messages"])) == row["messages"]
