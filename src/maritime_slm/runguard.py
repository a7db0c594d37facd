"""What keeps two runs apart and lets a run stop cleanly: the run-folder lock, signals, the processes it started.

The lock is an OS file lock (`flock`) on `<run>/.lock`: the OS releases it when its holder dies, however it dies,
so a stale lock file never blocks a later run. Ctrl-C and SIGTERM raise `Interrupted` in the runner's main thread:
papermill would otherwise swallow SIGINT and SIGTERM would end the runner without recording anything.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

LOCK_FILE = ".lock"


class RunLocked(ValueError):
    """Another live run holds the run folder; the message names its pid and start time."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM reached the runner. A BaseException, like KeyboardInterrupt, so no `except Exception`
    on the way up (papermill, nbclient) can swallow it."""

    def __init__(self, signum: int):
        self.signum = signum
        self.name = signal.Signals(signum).name
        self.exit_code = 128 + signum
        self.stage: str | None = None
        self.manifest: Path | None = None
        super().__init__(self.name)


class RunLock:
    """Hold `<run_dir>/.lock` for the run's lifetime; a second holder is refused with the first one's identity."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.path = run_dir / LOCK_FILE
        self.fd: int | None = None

    def __enter__(self) -> RunLock:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise RunLocked(
                    f"run folder {self.run_dir} is in use by {holder}: wait for that run to end, or choose "
                    "another --run-name"
                ) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(
                fd
            )  # the previous holder removed the file between our open and our lock: lock the new one
        os.ftruncate(fd, 0)
        started = datetime.now(UTC).isoformat(timespec="seconds")
        os.write(fd, json.dumps({"pid": os.getpid(), "start": started}).encode())
        self.fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self.fd is None:
            return
        self.path.unlink(missing_ok=True)
        os.close(self.fd)
        self.fd = None


def _holder(fd: int) -> str:
    try:
        info: dict[str, Any] = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except (OSError, ValueError):
        info = {}
    if not info.get("pid"):
        return "another run (it is just starting)"
    return f"pid {info['pid']} (started {info.get('start', '?')})"


@contextmanager
def signals_interrupt() -> Iterator[None]:
    """SIGINT and SIGTERM raise `Interrupted` once; a repeat while the run cleans up is ignored.

    Also records this process's descendants at that moment (the kernel and any server it started), for
    `stop_descendants`: once the kernel dies, its children are no longer ours to find.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum: int, _frame: object) -> None:
        if fired:
            return
        fired.append(signum)
        _SEEN.update(descendants(os.getpid()))
        raise Interrupted(signum)

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


_SEEN: dict[int, str] = {}


def _proc_stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time in clock ticks) of a live process from /proc; the start time tells a reused pid
    apart. A zombie counts as gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[-1].split()
    return None if fields[0] == "Z" else (int(fields[1]), fields[19])


def descendants(pid: int) -> dict[int, str]:
    """pid -> start time of every live descendant of `pid` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[tuple[int, str]]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        stat = _proc_stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[0], []).append((int(entry.name), stat[1]))
    found: dict[int, str] = {}
    todo = [pid]
    while todo:
        for child, started in children.get(todo.pop(), []):
            found[child] = started
            todo.append(child)
    return found


def stop_descendants(grace_s: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL after `grace_s`, every process this runner started (seen now or at the signal)."""
    targets = {**_SEEN, **descendants(os.getpid())}
    _SEEN.clear()

    def alive() -> list[int]:
        return [p for p, started in targets.items() if (s := _proc_stat(p)) and s[1] == started]

    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in alive():
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace_s
        while alive() and time.monotonic() < deadline:
            time.sleep(0.1)
    return sorted(targets)
