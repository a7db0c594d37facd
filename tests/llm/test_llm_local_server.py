"""The real llama.cpp server with SmolLM2-135M: the plumbing works end to end (the model's answers may not)."""

from __future__ import annotations

import socket
import urllib.parse

import psutil
import pytest
from pydantic import BaseModel

from maritime_slm.config import ModelEndpoint
from maritime_slm.llm import (
    FAILURE_KINDS,
    Ledger,
    LLMRequest,
    LocalServerError,
    RequestCache,
    find_smollm2_gguf,
    local_server,
    run_batch,
    serving,
)

pytestmark = pytest.mark.slow


class Vessel(BaseModel):
    name: str
    speed_knots: float


def _server_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "llama_server" in " ".join(p.cmdline())]


def _port_open(base_url: str) -> bool:
    url = urllib.parse.urlparse(base_url)
    with socket.socket() as sock:
        return sock.connect_ex((url.hostname, url.port)) == 0


def test_local_server_answers_json_object_schema_requests(tmp_path):
    assert find_smollm2_gguf().name.endswith(".gguf")
    endpoint = ModelEndpoint(
        name="smollm2",
        model="smollm2-135m-instruct",
        local=True,
        response_format="json_object_schema",
        temperature=0.0,
        max_tokens=48,
        concurrency=1,
        timeout_s=60,
    )
    requests = [
        LLMRequest.chat(
            f"The vessel {name} sails at {speed} knots. Reply with its name and speed.", output=Vessel
        )
        for name, speed in [("ALPHA", 12.5), ("BRAVO", 3), ("CHARLIE", 20.1)]
    ]
    with serving([endpoint], n_ctx=1024) as (served,):
        assert served.base_url and _port_open(served.base_url)
        assert served.concurrency == 1  # single-slot server: requests are not queued against their timeout
        (process,) = _server_children()
        with Ledger(tmp_path) as ledger, RequestCache(tmp_path / "cache.db") as cache:
            batch = run_batch(served, requests, ledger=ledger, cache=cache, max_reasks=1, progress=False)
            totals = ledger.totals("session")

    assert len(batch) == 3
    for result in batch:
        assert result.ok or result.failure in FAILURE_KINDS
        assert result.failure not in {"http_error", "timeout", "budget"}  # the server answered every call
        if result.ok:
            assert isinstance(result.value, Vessel)
    assert totals.requests == batch.calls >= 3
    assert totals.input_tokens > 0 and totals.output_tokens > 0 and totals.usd == 0.0
    assert not process.is_running() and not _port_open(served.base_url)
    assert not _server_children()


def test_server_that_cannot_start_reports_its_output(tmp_path):
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"not a gguf file")
    with pytest.raises(LocalServerError, match="exited with code"):
        with local_server(fake, startup_timeout_s=60):
            pass
    assert not _server_children()


def test_replicas_are_servers_that_split_the_threads_and_all_stop():
    endpoint = ModelEndpoint(name="smollm2", model="smollm2-135m-instruct", local=True, replicas=2,
                             response_format="text", temperature=0.0, max_tokens=8, timeout_s=60)  # fmt: skip
    with serving([endpoint], n_ctx=512, n_threads=2) as (served,):
        children = _server_children()
        assert len(children) == 2 and served.concurrency == 1  # per server: each has one slot
        assert len(set(served.replica_urls)) == 2 and served.base_url == served.replica_urls[0]
        assert all(_port_open(url) for url in served.replica_urls)
        for child in children:
            cmd = child.cmdline()
            assert cmd[cmd.index("--n_threads") + 1] == "1"
            assert (
                cmd[cmd.index("--n_threads_batch") + 1] == "1"
            )  # prompts too, or replicas fight for the cores
    assert not _server_children()
    assert not any(_port_open(url) for url in served.replica_urls)
