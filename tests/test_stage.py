"""The stage contract: typed records, earlier stages' folders, stale upstream stages, hand-opened notebooks."""

import json

import pytest

from maritime_slm import stage as stage_module
from maritime_slm.config import ParamsError, dump_params, load_params
from maritime_slm.stage import Stage, StageRecord, params_sha


class Counted(StageRecord):
    rows: int
    rate: float | None = None


def test_a_record_writes_its_file_and_reads_back_typed_with_its_extra_keys(tmp_path):
    Counted(rows=3, accuracy_tuned=0.5).write(tmp_path)
    back = Counted.read(tmp_path)
    assert (back.rows, back.rate, back.model_extra) == (3, None, {"accuracy_tuned": 0.5})
    (tmp_path / "_stage.json").write_text(json.dumps({"rows": "three"}))
    with pytest.raises(ParamsError, match=r"_stage.json: key 'rows': "):
        Counted.read(tmp_path)
    with pytest.raises(ParamsError, match="did not finish"):
        Counted.read(tmp_path / "nowhere")


def _run(tmp_path, made_with):
    """A run folder whose ingest and generate stages were made with `made_with` params."""
    run = tmp_path / "run"
    for name in ("ingest", "generate"):
        (run / name).mkdir(parents=True)
    manifest = {
        "stages": {
            name: {
                "status": "done",
                "params_sha": params_sha(made_with),
                "params": made_with.model_dump(mode="json"),
            }
            for name in ("ingest", "generate")
        }
    }
    (run / "manifest.json").write_text(json.dumps(manifest))
    return run


def test_reading_an_earlier_stage_made_with_other_params_warns_with_the_keys(tmp_path, capsys):
    old = load_params("smoke")
    run = _run(tmp_path, old)
    now = old.model_copy(deep=True)
    now.generate.pairs_per_context += 1
    (run / "params.yaml").write_text(dump_params(now))
    stage = Stage.open("curate", "x", "smoke", run_dir=str(run), stage_dir=str(tmp_path / "tmp"))
    stage.input("ingest")
    assert capsys.readouterr().err == ""
    stage.input("generate")
    err = capsys.readouterr().err
    assert "reads 'generate', made with other params (generate.pairs_per_context)" in err
    assert "--stages 02-03" in err and err.count("\n") == 1


def test_a_later_stages_params_do_not_make_earlier_stages_stale(tmp_path, capsys):
    old = load_params("smoke")
    run = _run(tmp_path, old)
    now = old.model_copy(deep=True)
    now.evaluate.max_items += 1
    now.engine.workers = 2
    (run / "params.yaml").write_text(dump_params(now))
    stage = Stage.open("curate", "x", "smoke", run_dir=str(run), stage_dir=str(tmp_path / "tmp"))
    assert stage.inputs_before() == {"ingest": run / "ingest", "generate": run / "generate"}
    assert capsys.readouterr().err == ""


def test_a_notebook_opened_by_hand_never_rewrites_a_runs_params(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(stage_module, "OUTPUTS_DIR", tmp_path)
    first = Stage.open("ingest", "mine", "smoke")
    written = (tmp_path / "mine" / "params.yaml").read_text()
    assert first.params == load_params("smoke")
    changed = first.params.model_copy(deep=True)
    changed.seed = 7
    (tmp_path / "mine" / "params.yaml").write_text(dump_params(changed))
    again = Stage.open("ingest", "mine", "smoke")
    assert again.params.seed == 7
    assert (tmp_path / "mine" / "params.yaml").read_text() == dump_params(changed) != written
    assert "uses the run's params" in capsys.readouterr().err
