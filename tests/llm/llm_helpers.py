"""Helpers for the llm tests (imported by name: pytest puts this folder on sys.path)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from maritime_slm.config import ModelEndpoint
from maritime_slm.llm import Backoff, LLMRequest
from maritime_slm.llm.testserver import ScriptedServer

FAST = Backoff(base_s=0.01, max_s=0.05, jitter=0.0)


class Echo(BaseModel):
    """What the scripted server's default reply parses into."""

    prompt: str
    length: int


def make_endpoint(server: ScriptedServer, **overrides: Any) -> ModelEndpoint:
    fields: dict[str, Any] = {
        "name": "teacher",
        "model": "gpt-4o",
        "base_url": server.base_url,
        "response_format": "json_schema",
        "timeout_s": 5.0,
        "max_retries": 2,
        "concurrency": 4,
        "price_in_per_m": 2.5,
        "price_out_per_m": 10.0,
    }
    return ModelEndpoint(**(fields | overrides))


def ask(prompt: str, **kwargs: Any) -> LLMRequest:
    kwargs.setdefault("tag", "qa")
    kwargs.setdefault("output", Echo)
    return LLMRequest.chat(prompt, **kwargs)
