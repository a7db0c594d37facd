"""The API key is read from the environment, sent in the Authorization header, and written nowhere else."""

from __future__ import annotations

import secrets

import pytest
from llm_helpers import FAST, ask, make_endpoint

from maritime_slm.llm import Ledger, LLMClient, MissingAPIKey, RequestCache, run_batch
from maritime_slm.llm.secrets import NO_KEY
from maritime_slm.llm.testserver import Fail


def test_key_never_reaches_a_file_a_result_or_a_repr(scripted, tmp_path, monkeypatch):
    key = "test-key-" + "X" * 24 + secrets.token_hex(8)
    monkeypatch.setenv("MARITIME_TEST_KEY", key)
    server = scripted(
        script={
            # Servers that echo the request's Authorization header in their error message.
            "unauthorized": [Fail(401, echo_authorization=True)],
            "flaky": [Fail(500, echo_authorization=True)] * 3,
        }
    )
    endpoint = make_endpoint(server, api_key_env="MARITIME_TEST_KEY", max_retries=2)
    with Ledger(tmp_path / "run") as ledger, RequestCache(tmp_path / "cache.db") as cache:
        batch = run_batch(
            endpoint,
            [ask("unauthorized"), ask("flaky"), ask("fine")],
            cache=cache,
            ledger=ledger,
            backoff=FAST,
            progress=False,
        )
        files_while_open = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    unauthorized, flaky, fine = batch
    assert fine.ok
    assert unauthorized.failure == flaky.failure == "http_error"
    assert "Authorization: Bearer [redacted]" in unauthorized.detail  # the server did get the key ...
    texts = [repr(batch.results), batch.summary(), repr(endpoint), repr(ledger), repr(cache)]
    texts += [r.detail for r in batch]
    assert not any(key in text for text in texts)  # ... and nothing we kept has it
    files = files_while_open | {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    assert any(p.name == "calls.jsonl" for p in files) and any(p.suffix == ".db" for p in files)
    for path, data in files.items():
        assert key.encode() not in data, path
        assert key[-16:].encode() not in data, path  # not even its tail


def test_client_repr_and_errors_name_the_variable_not_the_key(scripted, monkeypatch):
    monkeypatch.setenv("MARITIME_TEST_KEY", "test-only-very-secret-value-123456")
    server = scripted()
    endpoint = make_endpoint(server, api_key_env="MARITIME_TEST_KEY")
    client = LLMClient(endpoint)
    assert "very-secret" not in repr(client) and "very-secret" not in repr(vars(client).get("_redact"))

    monkeypatch.delenv("MARITIME_TEST_KEY")
    with pytest.raises(MissingAPIKey, match="MARITIME_TEST_KEY"):
        LLMClient(endpoint)


def test_local_endpoints_never_send_the_environment_key(scripted, monkeypatch):
    """A local server needs no key; OPENAI_API_KEY must not be picked up and sent to it."""
    monkeypatch.setenv("OPENAI_API_KEY", "fake-openai-key-should-stay-home")
    server = scripted(script={"q": [Fail(401, echo_authorization=True)]})
    endpoint = make_endpoint(server, local=True, api_key_env=None)
    result = run_batch(endpoint, [ask("q")], backoff=FAST, progress=False)[0]
    assert NO_KEY in result.detail and "stay-home" not in result.detail
