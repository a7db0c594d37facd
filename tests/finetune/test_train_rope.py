"""Rope scaling (YaRN) only where a window needs it, and one rule for the base and the tuned student (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
from train_testdata import smoke_params

from maritime_slm.config import ParamsError, load_params
from maritime_slm.evaluate.predict import student_identity
from maritime_slm.finetune.model import _rope_kwargs, effective_rope_scaling

YARN = "finetune.rope_scaling={type: yarn, factor: 4.0}"


@pytest.fixture(scope="module")
def qwen_config(tmp_path_factory) -> Path:
    """A Qwen2.5-7B-shaped config (its native 32,768-token window) in a local folder: no weights, no hub."""
    from transformers import Qwen2Config

    folder = tmp_path_factory.mktemp("qwen2.5")
    Qwen2Config(
        max_position_embeddings=32768, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, rope_theta=1_000_000.0,
    ).save_pretrained(folder)  # fmt: skip
    return folder


def hub_student(folder: Path, max_length: int, *more: str):
    return smoke_params(
        "finetune.student=hub", f"finetune.model_name={folder}", f"finetune.max_length={max_length}", *more
    )


def test_paper_profile_runs_qwen_in_its_native_window(tmp_path):
    (tmp_path / "AIS_2024_01_01.csv").write_text("x\n")
    train = load_params("paper", [f"ingest.inputs=['{tmp_path}/*.csv']"]).finetune
    assert train.max_length == 32768 and train.rope_scaling is None


def test_rope_scaling_the_params_show_unneeded_is_refused():
    yarn_32k = "finetune.rope_scaling={type: yarn, factor: 4.0, original_max_position_embeddings: 32768}"
    with pytest.raises(
        ParamsError,
        match=r"key .finetune.rope_scaling.: Value error, .*, and finetune.max_length 32768 fits it",
    ):
        load_params("smoke", ["finetune.max_length=32768", yarn_32k])
    assert (
        load_params("smoke", ["finetune.max_length=65536", yarn_32k]).finetune.rope_scaling["factor"] == 4.0
    )


def test_rope_scaling_applies_only_beyond_the_native_window(qwen_config, caplog):
    within = hub_student(qwen_config, 32768, YARN).finetune
    assert _rope_kwargs(str(qwen_config), within) == {}
    assert "not applied: max_length 32768 fits the model's native window of 32768" in caplog.text
    beyond = hub_student(qwen_config, 65536, YARN).finetune
    rope = _rope_kwargs(str(qwen_config), beyond)["rope_parameters"]
    assert (rope["rope_type"], rope["factor"], rope["original_max_position_embeddings"]) == (
        "yarn",
        4.0,
        32768,
    )
    assert rope["rope_theta"] == 1_000_000.0  # the model's own parameters are kept
    assert effective_rope_scaling(hub_student(qwen_config, 65536).finetune) is None


@pytest.mark.parametrize(("max_length", "scaled"), [(32768, False), (65536, True)])
def test_base_and_tuned_students_are_evaluated_with_one_rope_rule(qwen_config, tmp_path, max_length, scaled):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    params = hub_student(qwen_config, max_length, YARN)
    base, tuned = student_identity(params, None), student_identity(params, adapter)
    assert base["rope_scaling"] == tuned["rope_scaling"]
    assert (base["rope_scaling"] is not None) is scaled
