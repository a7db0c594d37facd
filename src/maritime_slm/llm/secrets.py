"""API keys come only from the environment and go only into the Authorization header, never into text we keep."""

from __future__ import annotations

import os

from ..config import ModelEndpoint

NO_KEY = "no-key-required"  # local servers take any non-empty key


class MissingAPIKey(RuntimeError):
    """The endpoint names an environment variable that is not set (the message names the variable only)."""


def api_key_for(endpoint: ModelEndpoint) -> str:
    """The key from `endpoint.api_key_env`; a dummy for servers that need none (the local llama.cpp server).

    Always explicit: the `openai` client would otherwise pick up OPENAI_API_KEY on its own and send it anywhere.
    """
    if endpoint.api_key_env:
        key = os.environ.get(endpoint.api_key_env, "").strip()
        if key:
            return key
        if not endpoint.local:
            raise MissingAPIKey(
                f"endpoint {endpoint.name!r} needs an API key: set the environment variable {endpoint.api_key_env}"
            )
    return NO_KEY


class Redactor:
    """Replaces known secrets in text bound for logs, results and exception messages."""

    def __init__(self, *secrets: str):
        self._secrets = [s for s in secrets if s and s != NO_KEY and len(s) >= 8]

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secret(s))"
