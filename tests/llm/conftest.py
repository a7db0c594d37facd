"""A scripted server per test, stopped after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from maritime_slm.llm.testserver import ScriptedServer


@pytest.fixture
def scripted() -> Iterator[Callable[..., ScriptedServer]]:
    """Start scripted servers inside a test; all are stopped after it."""
    servers: list[ScriptedServer] = []

    def start(**kwargs: Any) -> ScriptedServer:
        server = ScriptedServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
