"""End to end: all six notebooks of the smoke profile through the runner, as a user would run them."""

import json
import subprocess

import pytest
from testkit import ROOT

FAKE_KEY = "test-key-" + "Zq7" * 12


@pytest.mark.slow
def test_smoke_run_all_stages(tmp_path, python, cli_env):
    cli_env["OPENAI_API_KEY"] = FAKE_KEY
    out = tmp_path / "outputs"
    proc = subprocess.run(
        [python, "-m", "maritime_slm", "run", "--profile", "smoke", "--run-name", "ci",
         "--outputs-dir", str(out)],
        capture_output=True, text=True, env=cli_env, cwd=ROOT, timeout=1500,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = out / "ci"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    stages = ["ingest", "generate", "curate", "finetune", "evaluate", "cost"]
    assert list(manifest["stages"]) == stages
    assert {s: manifest["stages"][s]["status"] for s in stages} == dict.fromkeys(stages, "done")
    for stem in ["01_ingest", "02_generate", "03_curate", "04_finetune", "05_evaluate", "06_cost_analysis"]:
        executed = json.loads((run_dir / "notebooks" / f"{stem}.ipynb").read_text())
        assert executed["metadata"]["papermill"]["exception"] is None
    # the students answered through their exported GGUF behind llama.cpp, with the HF reference beside
    evaluated = json.loads((run_dir / "evaluate" / "_stage.json").read_text())
    assert evaluated["student_runtime"] == "llama.cpp Q8_0 (1 in flight)"
    assert set(evaluated["served_agreement"]) == {"F16", "Q8_0", "Q4_K_M"}
    leaked = [p for p in run_dir.rglob("*") if p.is_file() and FAKE_KEY.encode() in p.read_bytes()]
    assert leaked == []
