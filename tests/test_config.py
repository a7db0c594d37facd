"""Params fail before any work starts, naming the file, the key and what was expected."""

import secrets
import shutil

import pytest

from maritime_slm import config
from maritime_slm.config import PARAMS_DIR, ParamsError, load_params, parse_override


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_shipped_profiles_validate(profile):
    params = load_params(profile)
    assert params.profile == profile


def test_paper_profile_validates_once_data_is_given(tmp_path):
    (tmp_path / "AIS_2024_01_01.csv").write_text("x\n")
    params = load_params("paper", [f"ingest.inputs=['{tmp_path}/*.csv']"])
    assert [t.model for t in params.generate.teachers] == ["gpt-4o-2024-08-06", "o3-mini-2025-01-31"]
    assert params.generate.teachers[1].reasoning_effort == "medium"
    assert all(t.api_key_env == "OPENAI_API_KEY" for t in params.generate.teachers)


def test_paper_profile_without_data_names_the_missing_input():
    with pytest.raises(ParamsError, match=r"paper.yaml[\s\S]*ingest.inputs[\s\S]*data/raw/\*"):
        load_params("paper")


def test_unknown_key_is_named(tmp_path):
    shutil.copytree(PARAMS_DIR / "shared", tmp_path / "shared")
    bad = tmp_path / "bad.yaml"
    bad.write_text((PARAMS_DIR / "smoke.yaml").read_text().replace("  max_steps: 4", "  max_stepz: 4"))
    with pytest.raises(ParamsError) as err:
        load_params(str(bad))
    assert str(bad) in str(err.value)
    assert "unknown key 'finetune.max_stepz'" in str(err.value)


def test_wrong_type_names_key_expectation_and_value():
    with pytest.raises(ParamsError) as err:
        load_params("smoke", ["finetune.max_steps=lots"])
    message = str(err.value)
    assert "smoke.yaml" in message
    assert "key 'finetune.max_steps'" in message
    assert "valid integer" in message
    assert "'lots'" in message


def test_constraint_violation_is_named():
    with pytest.raises(ParamsError, match=r"key 'curate.split'.*must be 1.0"):
        load_params("smoke", ["curate.split.train=0.9"])


def test_missing_params_file_lists_profiles():
    with pytest.raises(
        ParamsError,
        match=r"params file not found: .*nope.yaml \(profiles in .*: default, paper, paper-dry, smoke\)",
    ):
        load_params("nope")


def test_override_parses_yaml_values():
    params = load_params(
        "smoke", ["finetune.lr=1e-4", "contexts.n_contexts=3", "finetune.target_modules=[q_proj]"]
    )
    assert params.finetune.lr == pytest.approx(1e-4)
    assert params.contexts.n_contexts == 3
    assert params.finetune.target_modules == ["q_proj"]


def test_override_into_unknown_section_fails():
    with pytest.raises(ParamsError, match="unknown key 'nosuch'"):
        load_params("smoke", ["nosuch.key=1"])


@pytest.mark.parametrize("text", ["novalue", "=3", "a..b=1"])
def test_malformed_override(text):
    with pytest.raises(ParamsError, match="expected key.sub=value"):
        parse_override(text)


def test_missing_input_file_fails_before_work():
    with pytest.raises(ParamsError, match=r"ingest.inputs': no file matches 'data/none.csv'"):
        load_params("default", ["ingest.inputs=[data/none.csv]"])


def test_missing_include_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("include: [nowhere.yaml]\nprofile: x\n")
    with pytest.raises(ParamsError, match=r"bad.yaml: key 'include': file not found: .*nowhere.yaml"):
        load_params(str(bad))


def test_cost_scenario_with_unpriced_model_fails():
    with pytest.raises(ParamsError, match=r"scenarios.this_run.api_model 'gpt-9' has no price"):
        load_params("smoke", ["cost.scenarios.this_run.api_model=gpt-9"])


def _params_dir(tmp_path, monkeypatch, files: dict[str, bytes | str]):
    root = tmp_path / "params"
    root.mkdir()
    for name, text in files.items():
        (root / name).write_bytes(text if isinstance(text, bytes) else text.encode())
    monkeypatch.setattr(config, "PARAMS_DIR", root)
    return root


def test_include_cycle_is_named(tmp_path, monkeypatch):
    root = _params_dir(
        tmp_path, monkeypatch, {"a.yaml": "include: [b.yaml]\nprofile: a\n", "b.yaml": "include: [a.yaml]\n"}
    )
    with pytest.raises(ParamsError, match=r"key 'include': include cycle a.yaml -> b.yaml -> a.yaml"):
        load_params(str(root / "a.yaml"))


def test_bad_included_yaml_is_named(tmp_path, monkeypatch):
    root = _params_dir(
        tmp_path, monkeypatch, {"a.yaml": "include: [b.yaml]\nprofile: a\n", "b.yaml": "seed: [1,\n"}
    )
    with pytest.raises(ParamsError, match=r"b.yaml: not valid YAML"):
        load_params(str(root / "a.yaml"))


def test_non_utf8_params_file_is_named(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"profile: caf\xe9\n")
    with pytest.raises(ParamsError, match=r"latin1.yaml: not UTF-8 text \(byte 0xe9 at offset 12\)"):
        load_params(str(path))


def test_include_cannot_read_files_outside_params(tmp_path, monkeypatch):
    (tmp_path / "outside.yaml").write_text("seed: 5\n")
    root = _params_dir(tmp_path, monkeypatch, {"p.yaml": "include: [../outside.yaml]\nprofile: p\n"})
    with pytest.raises(
        ParamsError, match=r"p.yaml: key 'include': '../outside.yaml' must name a .yaml file inside"
    ):
        load_params(str(root / "p.yaml"))


def test_boolean_is_not_a_number():
    with pytest.raises(ParamsError, match=r"key 'finetune.lora_r': .*expected a number, not true/false"):
        load_params("smoke", ["finetune.lora_r=true"])


def test_a_key_given_as_api_key_env_is_refused_and_never_echoed():
    key = "test-key-" + "X" * 24 + secrets.token_hex(8)
    with pytest.raises(ParamsError) as err:
        load_params("smoke", [f"curate.editor.api_key_env={key}"])
    message = str(err.value)
    assert "key 'curate.editor.api_key_env'" in message and "NAME of an environment variable" in message
    assert key not in message and key[-16:] not in message


@pytest.mark.parametrize("name", ["../../tmp/escape", "/tmp/x", "..", "", "a" * 300, "a/b", "-x"])
def test_profile_name_must_be_one_safe_folder_name(name):
    with pytest.raises(ParamsError, match="expected one folder name"):
        load_params("smoke", [f"profile={name!r}"])


def test_engine_section_defaults_and_errors():
    engine = load_params("smoke").engine
    assert (engine.kind, engine.workers, engine.address) == ("local", "auto", "")
    assert load_params("smoke", ["engine.kind=ray", "engine.workers=2"]).engine.workers == 2
    with pytest.raises(ParamsError, match=r"key 'engine.kind'.*'local' or 'ray'"):
        load_params("smoke", ["engine.kind=spark"])
    with pytest.raises(ParamsError, match=r"key 'engine.workers'.*whole number >= 1 or 'auto'"):
        load_params("smoke", ["engine.workers=0"])
    with pytest.raises(ParamsError, match=r"key 'engine'.*engine.address is only used with engine.kind: ray"):
        load_params("smoke", ["engine.address=ray://head:10001"])


def test_a_recipe_with_the_old_train_section_is_told_its_new_name():
    with pytest.raises(
        ParamsError,
        match=r"unknown key 'train': the section is named after its stage now, use 'finetune'",
    ):
        load_params("smoke", ["train.lr=1e-4"])
