"""The runner: stage selection, failures named, atomic stage folders that survive kill -9."""

import json
import os
import signal
import subprocess
import time

import pytest
from testkit import ROOT, make_notebook

from maritime_slm.config import load_params
from maritime_slm.runner import (
    commit_stage_dir,
    load_manifest,
    params_changes,
    params_sha,
    parse_stages,
    recover_stage_dir,
    run,
)


def test_parse_stages():
    assert parse_stages(None) == [
        "01_ingest",
        "02_generate",
        "03_curate",
        "04_finetune",
        "05_evaluate",
        "06_cost_analysis",
    ]
    assert parse_stages("01-03") == ["01_ingest", "02_generate", "03_curate"]
    assert parse_stages("5,2") == ["02_generate", "05_evaluate"]
    with pytest.raises(ValueError, match="no stage 07"):
        parse_stages("07")
    with pytest.raises(ValueError, match="expected numbers"):
        parse_stages("ingest")


def test_commit_replaces_and_recover_restores(tmp_path):
    final = tmp_path / "ingest"
    final.mkdir()
    (final / "old.txt").write_text("old")
    tmp = tmp_path / ".ingest.tmp-1"
    tmp.mkdir()
    (tmp / "new.txt").write_text("new")
    commit_stage_dir(tmp, final)
    assert sorted(p.name for p in final.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ingest"]
    # a crash between moving the old folder aside and moving the new one in: recovery puts the old one back
    final.rename(tmp_path / ".ingest.old-9")
    (tmp_path / ".ingest.tmp-9").mkdir()
    recover_stage_dir(tmp_path, "ingest")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ingest"]
    assert (final / "new.txt").read_text() == "new"


def _notebooks(tmp_path, body_02: str):
    nb_dir = tmp_path / "notebooks"
    make_notebook(
        nb_dir / "01_ingest.ipynb",
        "ingest",
        "import polars as pl\n"
        "pl.DataFrame({'a': [1, 2, 3]}).write_parquet(stage.dir / 'points.parquet')\n"
        "(stage.paper_dir / 'table_x.md').write_text('| a |')\n"
        "StageRecord(rows_in=3).write(stage.dir)",
    )
    make_notebook(nb_dir / "02_generate.ipynb", "generate", body_02)
    return nb_dir


@pytest.mark.slow
def test_run_writes_manifest_outputs_and_paper(tmp_path):
    nb_dir = _notebooks(
        tmp_path, "print(stage.input('ingest'))\n(stage.dir / 'pairs.jsonl').write_text('{}\\n{}\\n')"
    )
    started = time.perf_counter()
    manifest = run("smoke", "01-02", "t", outputs_dir=tmp_path / "out", notebooks_dir=nb_dir)
    wall_s = time.perf_counter() - started
    run_dir = tmp_path / "out" / "t"
    on_disk = json.loads((run_dir / "manifest.json").read_text())
    assert on_disk["stages"] == manifest["stages"]
    ingest = on_disk["stages"]["ingest"]
    # a kernel start takes well over the 0.01 s the manifest rounds to; one stage cannot outlast the whole run
    assert ingest["status"] == "done" and 0 < ingest["wall_s"] <= wall_s
    assert ingest["outputs"]["points.parquet"]["rows"] == 3
    assert ingest["summary"] == {"rows_in": 3}
    assert ingest["paper"] == ["table_x.md"]
    assert on_disk["stages"]["generate"]["outputs"]["pairs.jsonl"]["rows"] == 2
    assert (run_dir / "paper" / "table_x.md").is_file()
    assert (run_dir / "params.yaml").is_file()
    assert (run_dir / "notebooks" / "02_generate.ipynb").is_file()
    assert not [p for p in run_dir.iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_reading_a_later_stage_is_refused(tmp_path):
    nb_dir = _notebooks(tmp_path, "stage.input('curate')")
    with pytest.raises(Exception, match="may only read earlier stages, not 'curate'"):
        run("smoke", "02", "t", outputs_dir=tmp_path / "out", notebooks_dir=nb_dir)


@pytest.mark.slow
def test_failing_cell_is_named_and_previous_stage_kept(tmp_path, python, cli_env):
    good = _notebooks(tmp_path / "good", "(stage.dir / 'pairs.jsonl').write_text('{}\\n')")
    out = tmp_path / "out"
    run("smoke", "01-02", "t", outputs_dir=out, notebooks_dir=good)
    bad = _notebooks(tmp_path / "bad", "x = 1\nraise ValueError('teacher exploded')")
    proc = subprocess.run(
        [python, "-m", "maritime_slm", "run", "--profile", "smoke", "--stages", "02", "--run-name", "t",
         "--outputs-dir", str(out), "--notebooks-dir", str(bad)],
        capture_output=True, text=True, env=cli_env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1
    # cell [4]: papermill injects the parameters cell, so the count matches the executed copy
    assert "stage 02_generate failed in notebooks/02_generate.ipynb, cell [4]" in proc.stderr
    assert "ending `raise ValueError('teacher exploded')`" in proc.stderr
    assert "ValueError: teacher exploded" in proc.stderr
    executed = json.loads((out / "t" / "notebooks" / "02_generate.ipynb").read_text())
    assert any("teacher exploded" in json.dumps(c.get("outputs", [])) for c in executed["cells"])
    assert (out / "t" / "generate" / "pairs.jsonl").read_text() == "{}\n"
    manifest = json.loads((out / "t" / "manifest.json").read_text())
    assert manifest["stages"]["generate"]["status"] == "failed"
    assert manifest["stages"]["generate"]["error"]["ename"] == "ValueError"


@pytest.mark.slow
def test_kill_mid_stage_leaves_previous_stage_intact(tmp_path, python, cli_env):
    out = tmp_path / "out"
    first = _notebooks(tmp_path / "first", "(stage.dir / 'pairs.jsonl').write_text('{\"v\": 1}\\n')")
    run("smoke", "01-02", "t", outputs_dir=out, notebooks_dir=first)
    before = {p.name: p.read_bytes() for p in (out / "t" / "generate").iterdir()}
    slow = _notebooks(
        tmp_path / "slow",
        "(stage.dir / 'pairs.jsonl').write_text('{\"v\": 2, \"half\": true}\\n')\nimport time\ntime.sleep(120)",
    )
    proc = subprocess.Popen(
        [python, "-m", "maritime_slm", "run", "--profile", "smoke", "--stages", "02", "--run-name", "t",
         "--outputs-dir", str(out), "--notebooks-dir", str(slow)],
        env=cli_env, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.time() + 180
    while not list((out / "t").glob(".generate.tmp-*/pairs.jsonl")):
        assert time.time() < deadline and proc.poll() is None, "the slow stage never started writing"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert {p.name: p.read_bytes() for p in (out / "t" / "generate").iterdir()} == before
    assert load_manifest(out / "t")["stages"]["generate"]["status"] == "killed"
    # the next run clears what the killed one left and commits its own result
    run("smoke", "02", "t", outputs_dir=out, notebooks_dir=first)
    assert not list((out / "t").glob(".generate.*"))
    assert (out / "t" / "generate" / "pairs.jsonl").read_text() == '{"v": 1}\n'


def test_engine_is_not_part_of_a_stages_recipe(tmp_path):
    """Where partitions ran changes no output, so switching engines never marks finished stages as stale."""
    local = load_params("smoke")
    entry = {"status": "done", "params_sha": params_sha(local), "params": local.model_dump(mode="json")}
    manifest = {"stages": {"ingest": entry}}
    on_ray = load_params("smoke", ["engine.kind=ray", "engine.workers=16"])
    assert params_sha(on_ray) == params_sha(local)
    assert params_changes(tmp_path, manifest, on_ray, set()) == []
    reseeded = load_params("smoke", ["engine.kind=ray", "seed=1"])
    assert params_changes(tmp_path, manifest, reseeded, set()) == ["  ingest: seed: 0 -> 1"]
