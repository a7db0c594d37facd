"""Client plumbing: the blocking helper inside a running event loop (Jupyter), endpoints and servers."""

from __future__ import annotations

import asyncio

import pytest
from llm_helpers import FAST, Echo, ask, make_endpoint

from maritime_slm.config import ModelEndpoint
from maritime_slm.llm import LLMClient, find_gguf, is_reasoning_model, run_batch, serving


def test_blocking_run_batch_works_inside_a_running_loop(scripted):
    """Notebook cells run inside the kernel's event loop, where asyncio.run() is refused."""
    server = scripted()

    async def cell():
        return run_batch(make_endpoint(server), [ask("q")], backoff=FAST, progress=False)

    batch = asyncio.run(cell())
    assert batch[0].value == Echo(prompt="q", length=1)


def test_async_client_can_be_used_directly(scripted):
    server = scripted()

    async def use() -> list:
        async with LLMClient(make_endpoint(server), backoff=FAST) as client:
            return await asyncio.gather(client.complete(ask("a")), client.complete(ask("b")))

    assert [r.value.prompt for r in asyncio.run(use())] == ["a", "b"]


def test_local_endpoint_without_a_server_is_refused_with_advice():
    endpoint = ModelEndpoint(name="local", model="smollm2", local=True)
    with pytest.raises(ValueError, match="serving"):
        LLMClient(endpoint)


def test_serving_passes_api_endpoints_through_untouched():
    api = ModelEndpoint(name="gpt-4o", model="gpt-4o", base_url="https://api.openai.com/v1")
    with serving([api]) as (same,):
        assert same == api


def test_missing_gguf_package_is_named():
    with pytest.raises(FileNotFoundError, match="no_such_gguf_package"):
        find_gguf("no_such_gguf_package")


@pytest.mark.parametrize(
    ("model", "effort", "reasoning"),
    [("o3-mini", None, True), ("o1", None, True), ("gpt-5", None, True), ("gpt-4o", None, False),
     ("gpt-5-chat-latest", None, False), ("smollm2", "low", True)],
)  # fmt: skip
def test_reasoning_model_detection(model, effort, reasoning):
    endpoint = ModelEndpoint(name="m", model=model, base_url="http://x/v1", reasoning_effort=effort)
    assert is_reasoning_model(endpoint) is reasoning


def test_a_local_endpoint_s_repeat_penalty_reaches_the_server_and_an_api_is_sent_no_such_field(scripted):
    """llama-cpp-python's server penalises repeats (1.1) unless told; the OpenAI API knows no such field. The served
    student reads values out of its prompt and must be free to copy them, as the Hugging Face reference is."""
    server = scripted()
    local = make_endpoint(server, name="student", model="student-x", local=True, repeat_penalty=1.0)
    default = make_endpoint(server, name="teacher", model="teacher-x", local=True)
    run_batch(local, [ask("local")], backoff=FAST, progress=False)
    run_batch(default, [ask("default")], backoff=FAST, progress=False)
    run_batch(make_endpoint(server, repeat_penalty=1.0), [ask("api")], backoff=FAST, progress=False)
    assert server.bodies("local")[0]["repeat_penalty"] == 1.0
    assert "repeat_penalty" not in server.bodies("default")[0]
    assert "repeat_penalty" not in server.bodies("api")[0]
