import os
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]


def make_notebook(path: Path, stage: str, body: str) -> Path:
    """A minimal stage notebook: the runner's parameters cell, Stage.open, then `body`."""
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('run_name = "x"\nprofile = "smoke"\nrun_dir = ""\nstage_dir = ""')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [
        params,
        nbformat.v4.new_code_cell(
            f"from maritime_slm.stage import Stage\nstage = Stage.open({stage!r}, run_name, profile, run_dir, stage_dir)"
        ),
        nbformat.v4.new_code_cell(body),
    ]
    nb.metadata["kernelspec"] = {
        "name": "maritime-slm",
        "display_name": "Python (maritime-slm)",
        "language": "python",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def cli_env():
    """Environment for running `python -m maritime_slm` in a subprocess, with Jupyter state inside the repo."""
    env = dict(os.environ)
    env.setdefault("JUPYTER_CONFIG_DIR", str(ROOT / ".jupyter"))
    env.setdefault("IPYTHONDIR", str(ROOT / ".ipython"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


@pytest.fixture
def python():
    return sys.executable
