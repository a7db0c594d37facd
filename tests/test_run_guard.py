"""Runs that cannot escape `outputs/`, collide, ignore Ctrl-C, mix params silently or hide a failed commit."""

import json
import os
import signal
import subprocess
import time

import pytest
from testkit import ROOT, make_notebook

from maritime_slm import runner
from maritime_slm.config import ParamsError
from maritime_slm.runguard import RunLocked, _proc_stat
from maritime_slm.runner import ParamsMismatch, StageFailed, run

WRITE = "(stage.dir / 'pairs.jsonl').write_text('{\"v\": 1}\\n')"
SLOW = "(stage.dir / 'pairs.jsonl').write_text('{\"v\": 2}\\n')\nimport time\ntime.sleep(120)"


def _notebooks(folder, body_02=WRITE):
    make_notebook(folder / "01_ingest.ipynb", "ingest", "StageRecord(rows_in=0).write(stage.dir)")
    make_notebook(folder / "02_generate.ipynb", "generate", body_02)
    return folder


def _start(python, cli_env, out, nb_dir, *extra):
    return subprocess.Popen(
        [python, "-m", "maritime_slm", "run", "--profile", "smoke", "--stages", "02", "--run-name", "t",
         "--outputs-dir", str(out), "--notebooks-dir", str(nb_dir), *extra],
        env=cli_env, cwd=ROOT, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _wait_for_stage_tmp(out, proc):
    deadline = time.time() + 180
    while not list((out / "t").glob(".generate.tmp-*/pairs.jsonl")):
        assert time.time() < deadline and proc.poll() is None, "the slow stage never started writing"
        time.sleep(0.5)


@pytest.mark.parametrize(
    "name", ["../../escape", "/tmp/maritime-escape", "..", "", "a" * 300, "x/y", ".hidden"]
)
def test_run_name_cannot_leave_outputs_and_nothing_is_written(tmp_path, name):
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(ParamsError, match=r"--run-name .*: expected one folder name of 1-64 letters"):
        run("smoke", "01", name, outputs_dir=out, notebooks_dir=_notebooks(tmp_path / "nb"))
    assert not out.exists() and not (tmp_path / "a" / "escape").exists()


def test_escape_attempt_is_one_line_on_the_command_line(tmp_path, python, cli_env):
    proc = subprocess.run(
        [python, "-m", "maritime_slm", "run", "--profile", "smoke", "--run-name", "../../tmp/escape",
         "--outputs-dir", str(tmp_path / "out"), "--notebooks-dir", str(_notebooks(tmp_path / "nb"))],
        capture_output=True, text=True, env=cli_env, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: --run-name '../../tmp/escape': expected one folder name of 1-64 letters, digits, '.', '_' or '-', "
        "starting with a letter or digit\n"
    )
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_second_run_on_a_busy_folder_is_refused_and_the_lock_dies_with_its_holder(tmp_path, python, cli_env):
    out = tmp_path / "out"
    first = _start(python, cli_env, out, _notebooks(tmp_path / "slow", SLOW))
    try:
        _wait_for_stage_tmp(out, first)
        with pytest.raises(RunLocked, match=rf"{out / 't'} is in use by pid {first.pid} \(started 20\d\d-"):
            run("smoke", "02", "t", outputs_dir=out, notebooks_dir=_notebooks(tmp_path / "fast"))
        assert list((out / "t").glob(".generate.tmp-*/pairs.jsonl")), "the busy run's temp folder was touched"
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=30)
    assert (out / "t" / ".lock").exists()  # left behind by SIGKILL: the OS released the lock itself
    manifest = run("smoke", "02", "t", outputs_dir=out, notebooks_dir=_notebooks(tmp_path / "fast"))
    assert manifest["stages"]["generate"]["status"] == "done"
    assert not (out / "t" / ".lock").exists()


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_ctrl_c_and_sigterm_stop_the_kernel_and_mark_the_stage(tmp_path, python, cli_env, signum, code):
    out = tmp_path / "out"
    run("smoke", "02", "t", outputs_dir=out, notebooks_dir=_notebooks(tmp_path / "fast"))
    before = (out / "t" / "generate" / "pairs.jsonl").read_text()
    proc = _start(python, cli_env, out, _notebooks(tmp_path / "slow", SLOW))
    _wait_for_stage_tmp(out, proc)
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # what Ctrl-C in a terminal does
    else:
        os.kill(proc.pid, signum)
    try:
        _, stderr = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code
    name = signal.Signals(signum).name
    assert f"interrupted by {name}: stage 02_generate stopped" in stderr
    entry = json.loads((out / "t" / "manifest.json").read_text())["stages"]["generate"]
    assert entry["status"] == "interrupted" and entry["signal"] == name and entry["end"]
    assert entry["stopped"], "the kernel was not among the processes stopped"
    assert all(_proc_stat(pid) is None for pid in entry["stopped"])
    assert (out / "t" / "generate" / "pairs.jsonl").read_text() == before
    assert not list((out / "t").glob(".generate.*"))


@pytest.mark.slow
def test_a_failed_commit_marks_the_stage_failed(tmp_path, monkeypatch):
    def broken(tmp, final):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runner, "commit_stage_dir", broken)
    with pytest.raises(StageFailed, match=r"stage 02_generate ran but its outputs could not be committed"):
        run("smoke", "02", "t", outputs_dir=tmp_path / "out", notebooks_dir=_notebooks(tmp_path / "nb"))
    entry = json.loads((tmp_path / "out" / "t" / "manifest.json").read_text())["stages"]["generate"]
    assert entry["status"] == "failed" and entry["error"]["while"] == "committing"
    assert not list((tmp_path / "out" / "t").glob(".generate.*"))


@pytest.mark.slow
def test_other_params_than_the_finished_stages_are_refused_then_forced(tmp_path):
    out, nb = tmp_path / "out", _notebooks(tmp_path / "nb")
    run("smoke", "02", "t", outputs_dir=out, notebooks_dir=nb)
    with pytest.raises(ParamsMismatch, match=r"(?s)other params.*\n  generate: seed: 0 -> 1\n.*--force"):
        run("smoke", "01", "t", ["seed=1"], outputs_dir=out, notebooks_dir=nb)
    manifest = run("smoke", "01", "t", ["seed=1"], outputs_dir=out, notebooks_dir=nb, force=True)
    shas = {s: e["params_sha"] for s, e in manifest["stages"].items()}
    assert shas["ingest"] != shas["generate"]
