"""Dry runs: a profile with `emulator: true` (params/paper-dry.yaml) sends its API models' requests to the strict
OpenAI emulator on a loopback port, with the profile's own request settings (models, reasoning effort, token
limits, json_schema) and prices. Nothing reaches the API and nothing is paid, but every request is refused where
the API would refuse it and billed as the API bills it (`llm.emulator`: cached and reasoning tokens), so a dry run
shows what the real run sends, caches and costs, and that a second run pays nothing again.

The runner starts one emulator for the whole run (`emulator()`) and tells the stage kernels where it is through
the environment (`llm.server.EMULATOR_URL_ENV`); `llm.serving` points every emulated endpoint there and nowhere
else. A notebook opened by hand starts its own (`Stage.open` calls `ensure_emulator`).

The emulated model answers as a literal-minded model would, so that every stage after generation has work:
- a teacher (schema `TeacherOutput`) picks an intent from the prompt's menu and guesses "1": mostly wrong, so the
  verifier finds errors and the editor gets them;
- the editor (schema `EditorRevision`) copies the value of the first fact its prompt shows: the revision verifies;
- the judge compares the candidate's final answer with the reference final answer as text;
- any other question gets "Final answer: " with the first MMSI it names, else "1";
- any other schema gets a value of the schema.
Replies name the dated snapshot the alias resolves to (`SNAPSHOTS`), as the API's `model` field does.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from typing import Any

from maritime_slm.answers import FINAL_ANSWER_PREFIX, parse_final_answer
from maritime_slm.llm.server import EMULATOR_URL_ENV
from maritime_slm.llm.testserver import Behaviour, Reply, ScriptedServer, prompt_of

SNAPSHOTS = {"gpt-4o": "gpt-4o-2024-08-06", "o3-mini": "o3-mini-2025-01-31"}
"""The dated model each alias named in the params resolves to (OpenAI's model pages, read 2025-09)."""
FINGERPRINT = "fp_emulated"

_MENU_LINE = re.compile(r"^- (?P<key>[a-z_]+\.[a-z_]+(?::[^\n]*?)?): (?P<label>.+)$", re.M)
_FACTS_HEADER = "Facts computed from the snapshot"
_FACT_VALUE = re.compile(r" = (?P<value>.+?)(?: \(accepted within [^)]*\))?(?:; computed from: .*)?$")
_REFERENCE = re.compile(r"^Reference final answer: (?P<value>.*)$", re.M)
_CANDIDATE = re.compile(r"^Candidate answer:\n(?P<text>[\s\S]*?)\n\nReply with exactly one word", re.M)
_MMSI = re.compile(r"\b\d{9}\b")
_QUESTION = "\n\nQuestion: "


def respond(body: Mapping[str, Any]) -> Behaviour:
    """The emulated model's reply to a chat-completions body (the strict server bills it)."""
    prompt = prompt_of(body)
    fmt = body.get("response_format") or {}
    spec = fmt.get("json_schema") if isinstance(fmt, dict) and fmt.get("type") == "json_schema" else None
    if isinstance(spec, dict):
        value = _structured(
            str(spec.get("name", "")), spec.get("schema") or {}, prompt, str(body.get("model"))
        )
        content = json.dumps(value)
    elif _REFERENCE.search(prompt) and _CANDIDATE.search(prompt):
        content = _grade(prompt)
    else:
        content = _answer(prompt)
    model = str(body.get("model", ""))
    return Reply(content, model=SNAPSHOTS.get(model, model), system_fingerprint=FINGERPRINT)


def _structured(name: str, schema: Mapping[str, Any], prompt: str, model: str) -> Any:
    if name == "TeacherOutput":
        return _teacher(prompt, model)
    if name == "EditorRevision":
        return _revision(prompt)
    return example(schema, schema.get("$defs", {}))


def _teacher(prompt: str, model: str) -> dict[str, str]:
    menu = [(m["key"], m["label"]) for m in _MENU_LINE.finditer(prompt)]
    if not menu:
        return {"fact_key": "", "question": "What does the snapshot show?", "reasoning": "", "answer": "",
                "final_answer": "1"}  # fmt: skip
    pick = int(hashlib.sha256(f"{model}\n{prompt}".encode()).hexdigest(), 16) % len(menu)
    key, label = menu[pick]
    return {
        "fact_key": key,
        "question": f"What is the {label}?",
        "reasoning": "I read it from the snapshot.",
        "answer": "It is 1.",
        "final_answer": "1",
    }


def _revision(prompt: str) -> dict[str, str]:
    question = re.search(r"^- question: (.*)$", prompt, re.M)
    facts = prompt.split(_FACTS_HEADER, 1)[-1]
    first = next((line for line in facts.splitlines() if line.startswith("- ")), "")
    found = _FACT_VALUE.search(first)
    value = found.group("value").strip() if found else "1"
    return {
        "question": question.group(1).strip() if question else "What does the snapshot show?",
        "reasoning": "The facts computed from the snapshot give the value.",
        "answer": f"The answer is {value}.",
        "final_answer": value,
        "change": "Replaced the final answer with the value computed from the snapshot.",
    }


def _normal(text: str | None) -> str:
    return " ".join(re.sub(r"[^\w.]+", " ", (text or "").casefold()).split()).strip(" .")


def _grade(prompt: str) -> str:
    reference = _REFERENCE.search(prompt)
    candidate = _CANDIDATE.search(prompt)
    final = parse_final_answer(candidate.group("text")) if candidate else None
    same = reference is not None and final is not None and _normal(final) == _normal(reference.group("value"))
    return "CORRECT" if same else "INCORRECT"


def _answer(prompt: str) -> str:
    question = prompt.rsplit(_QUESTION, 1)[-1]
    mmsi = _MMSI.search(question)
    return f"I read the snapshot.\n{FINAL_ANSWER_PREFIX}{mmsi.group(0) if mmsi else '1'}"


def example(schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Any:
    """A value of a strict schema, as constrained decoding would give one."""
    if "$ref" in schema:
        return example(defs[str(schema["$ref"]).rsplit("/", 1)[-1]], defs)
    if "enum" in schema:
        return schema["enum"][0]
    if "anyOf" in schema:
        return example(schema["anyOf"][0], defs)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {key: example(sub, defs) for key, sub in (schema.get("properties") or {}).items()}
    if kind == "array":
        return [example(schema.get("items") or {}, defs)] * int(schema.get("minItems") or 0)
    return {"integer": 0, "number": 0, "boolean": False, "null": None}.get(str(kind), "emulated")


@contextlib.contextmanager
def emulator() -> Iterator[ScriptedServer]:
    """The strict emulator answering as the dry-run model on a free loopback port; its URL is in the environment
    (so in every stage kernel started meanwhile) until the block exits."""
    previous = os.environ.get(EMULATOR_URL_ENV)
    with ScriptedServer(strict=True, default=respond) as server:
        os.environ[EMULATOR_URL_ENV] = server.base_url
        try:
            yield server
        finally:
            if previous is None:
                os.environ.pop(EMULATOR_URL_ENV, None)
            else:
                os.environ[EMULATOR_URL_ENV] = previous


def ensure_emulator() -> str:
    """The emulator's URL for this process: the runner's, or one started now that lives as long as the process
    (a notebook opened by hand)."""
    if url := os.environ.get(EMULATOR_URL_ENV):
        return url
    stack = contextlib.ExitStack()
    server = stack.enter_context(emulator())
    atexit.register(stack.close)
    return server.base_url
