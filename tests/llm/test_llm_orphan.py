"""A llama.cpp server must not outlive the process that started it, even when that process is SIGKILLed."""

import subprocess
import sys

import psutil
import pytest

CHILD = """
import time
from maritime_slm.llm import local_server
with local_server() as url:
    print(url, flush=True)
    time.sleep(600)
"""


@pytest.mark.slow
def test_server_dies_with_its_killed_parent():
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    try:
        url = child.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        servers = psutil.Process(child.pid).children(recursive=True)
        assert servers, "no server process found under the child"
        child.kill()
        child.wait(timeout=30)
        gone, alive = psutil.wait_procs(servers, timeout=30)
        assert alive == [], f"orphaned server processes: {[p.pid for p in alive]}"
    finally:
        if child.poll() is None:
            child.kill()
