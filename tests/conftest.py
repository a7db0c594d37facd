import os
import sys

import pytest
from testkit import ROOT


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
