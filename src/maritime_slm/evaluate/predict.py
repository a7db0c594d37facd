"""Answering the test items: the student (base and tuned), the teacher LLMs, and the `rules` oracle.

- Students: batched greedy generation with the training chat template (`maritime_slm.finetune.generate_answers`),
  `evaluate.batch_size` prompts at a time, sorted by length; `latency_s` of an answer is the wall time of its
  batch (what a caller of a batched server waits) and `gen_share_s` its share of it (batch time / batch size),
  so throughput is `n / sum(gen_share_s)`. Token counts use the student's tokenizer (prompt as templated; the
  reply re-tokenized).
- Teachers: the same messages as the student, response format "text", temperature 0 (reasoning models take none),
  through `maritime_slm.llm` (request cache, ledger, budget, retries) with `concurrency` requests in flight;
  `latency_s` is the wall time of one request (retries included), tokens are the server's usage. A teacher
  gets `evaluate.max_new_tokens` like the student; a reasoning model (o-series) its endpoint's `max_tokens`,
  since its hidden reasoning counts against the limit.
- `train-prior`: the most common training answer to the same kind of question (fact family, e.g. "loitering
  count"), without reading the context: the floor a student reaches by memorising answer priors instead of reading.
- `rules` oracle: the rules teacher's reasoning and final answer written from the item's fact, i.e. it reads the
  fact sheet: an upper bound of what the grounded scoring can give, not a model.

Every answer goes to the `PredictionCache` as soon as it exists; a re-run loads cached answers and starts no model
and no server when nothing is missing. Failed LLM calls (HTTP errors, timeouts, budget) are not cached: they are
returned with `status = failed:<kind>` and asked again next run.
"""

from __future__ import annotations

import gc
import logging
import random
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from maritime_slm.answers import assistant_content, parse_final_answer
from maritime_slm.config import ModelEndpoint, Params
from maritime_slm.evaluate.cache import PredictionCache, folder_hash, prediction_key
from maritime_slm.evaluate.items import EvalItem
from maritime_slm.facts.factsheet import family, final_answer_text
from maritime_slm.generate.rules import pair_from_fact
from maritime_slm.llm import (
    LLMRequest,
    LLMResult,
    run_batch,
    serving,
)
from maritime_slm.llm.client import is_reasoning_model
from maritime_slm.llm.failures import FailureWatch
from maritime_slm.llm.session import LLMSession

logger = logging.getLogger(__name__)

ROLE_BASE, ROLE_TUNED, ROLE_TEACHER = "student_base", "student_tuned", "teacher"
ROLE_ORACLE, ROLE_PRIOR = "oracle", "prior"
BASE_NAME, TUNED_NAME = "student-base", "student-tuned"
ORACLE_NAME, PRIOR_NAME = "rules-oracle", "train-prior"
ANSWERED = ("ok", "refusal")
"""Statuses of a prediction that counts as an answer (a refusal is an answer with no value: scored incorrect)."""


@dataclass
class Prediction:
    item_id: str
    model: str
    role: str
    reply: str | None
    final_answer: str | None
    status: str = "ok"
    latency_s: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    gen_share_s: float | None = None
    batch_size: int | None = None
    cached: bool = False
    detail: str = ""

    @property
    def answered(self) -> bool:
        return self.status in ANSWERED

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_CACHED_FIELDS = (
    "reply",
    "status",
    "latency_s",
    "input_tokens",
    "output_tokens",
    "gen_share_s",
    "batch_size",
)


def _from_cache(item: EvalItem, name: str, role: str, value: Mapping[str, Any]) -> Prediction:
    p = Prediction(item.id, name, role, reply=None, final_answer=None, cached=True)
    for f in _CACHED_FIELDS:
        setattr(p, f, value.get(f))
    p.final_answer = parse_final_answer(p.reply or "")
    return p


def _to_cache(p: Prediction) -> dict[str, Any]:
    return {f: getattr(p, f) for f in _CACHED_FIELDS}


# ------------------------------------------------------------------------------------------------ students
def student_identity(params: Params, adapter_dir: Path | None, upcast: bool = False) -> dict[str, Any]:
    """What determines a student's answers: base weights, adapter bytes, backend and precision, the rope scaling
    it runs with (one rule for the base and the tuned model), the prompt format."""
    from maritime_slm.finetune.backend import derive_recipe
    from maritime_slm.finetune.model import effective_rope_scaling, student_source

    recipe = derive_recipe(params.finetune)
    return {
        "kind": "student",
        "base": student_source(params.finetune),
        "adapter": folder_hash(adapter_dir) if adapter_dir is not None else None,
        "backend": recipe.backend,
        "device": recipe.device,
        "load_in_4bit": recipe.load_in_4bit,
        "dtype": "float32 (upcast)" if upcast else recipe.dtype,
        "rope_scaling": effective_rope_scaling(params.finetune),
        "decoding": "greedy",
    }


Loader = Callable[[Path | None, Params], tuple[Any, Any]]


def _default_loader(adapter_dir: Path | None, params: Params) -> tuple[Any, Any]:
    from maritime_slm.finetune import load_for_inference

    return load_for_inference(adapter_dir, params)


def _prompt_tokens(tokenizer, messages: list[dict[str, str]]) -> int:
    from maritime_slm.finetune.chat import split_prompt

    text = tokenizer.apply_chat_template(split_prompt(messages), tokenize=False, add_generation_prompt=True)
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


def student_predictions(
    items: Sequence[EvalItem],
    params: Params,
    cache: PredictionCache,
    *,
    adapter_dir: Path | None,
    name: str,
    role: str,
    loader: Loader | None = None,
    progress: bool = True,
    upcast: bool = False,
) -> list[Prediction]:
    """Greedy answers of the base (`adapter_dir=None`) or tuned student, from the cache where present.

    `upcast` computes in float32 (the trained weights upcast exactly): the reference a served export is checked
    against, without the rounding of bf16 activations."""
    ev = params.evaluate
    identity = student_identity(params, adapter_dir, upcast)
    keys = {it.id: prediction_key(identity, it.id, it.prompt_hash, ev.max_new_tokens) for it in items}
    out: dict[str, Prediction] = {}
    for it in items:
        if (hit := cache.get(keys[it.id])) is not None:
            out[it.id] = _from_cache(it, name, role, hit)
    missing = [it for it in items if it.id not in out]
    if missing:
        from maritime_slm.finetune import generate_answers

        logger.info("%s: %d of %d answers to generate", name, len(missing), len(items))
        model, tokenizer = (loader or _default_loader)(adapter_dir, params)
        if upcast:
            model = model.float()
        try:
            n_in = {it.id: _prompt_tokens(tokenizer, it.messages) for it in missing}
            ordered = sorted(missing, key=lambda it: -n_in[it.id])
            bar = tqdm(
                total=len(missing), desc=f"{name}", unit="answer", disable=not progress, file=sys.stderr
            )
            for start in range(0, len(ordered), ev.batch_size):
                chunk = ordered[start : start + ev.batch_size]
                t0 = time.perf_counter()
                replies = generate_answers(
                    model, tokenizer, [it.messages for it in chunk], max_new_tokens=ev.max_new_tokens,
                    batch_size=len(chunk), progress=False,
                )  # fmt: skip
                elapsed = time.perf_counter() - t0
                n_out = [len(ids) for ids in tokenizer(list(replies), add_special_tokens=False)["input_ids"]]
                for it, reply, tokens in zip(chunk, replies, n_out, strict=True):
                    p = Prediction(
                        it.id, name, role, reply=reply, final_answer=parse_final_answer(reply),
                        latency_s=round(elapsed, 4), input_tokens=n_in[it.id], output_tokens=tokens,
                        gen_share_s=round(elapsed / len(chunk), 5), batch_size=len(chunk),
                    )  # fmt: skip
                    cache.put(keys[it.id], name, it.id, _to_cache(p))
                    out[it.id] = p
                bar.update(len(chunk))
            bar.close()
        finally:
            del model, tokenizer
            _free_memory()
    return [out[it.id] for it in items]


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


# ------------------------------------------------------------------------------------------------ oracle
def oracle_predictions(
    items: Sequence[EvalItem], facts: Mapping[str, list[dict[str, Any]]]
) -> list[Prediction]:
    """The rules teacher's answer to each item, written from the item's own fact (an oracle: it reads the sheet)."""
    out = []
    for it in items:
        sheet = {f["key"]: f for f in facts.get(it.context_id, [])}
        fact = sheet.get(it.fact_key or "")
        if fact is None:
            out.append(Prediction(it.id, ORACLE_NAME, ROLE_ORACLE, reply="", final_answer=None,
                                  detail="no fact for this item"))  # fmt: skip
            continue
        pair = pair_from_fact(dict(fact), it.context_id, random.Random(it.id))
        final = pair.final_answer if pair is not None else final_answer_text(dict(fact))
        reply = assistant_content(pair.reasoning if pair is not None else "", final)
        out.append(
            Prediction(it.id, ORACLE_NAME, ROLE_ORACLE, reply=reply, final_answer=parse_final_answer(reply))
        )
    return out


def prior_predictions(items: Sequence[EvalItem], train_rows: Sequence[Mapping[str, Any]]) -> list[Prediction]:
    """Each item answered with the commonest train final answer of its fact family (else of its category).

    Ties go to the answer seen first in the train file, so the baseline is deterministic."""
    by_family: dict[str, Counter[str]] = defaultdict(Counter)
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    for row in train_rows:
        answer = row.get("final_answer")
        if not answer:
            continue
        refs = row.get("facts_ref") or []
        if refs:
            by_family[family(str(refs[0]))][str(answer)] += 1
        by_category[str(row.get("category"))][str(answer)] += 1
    out = []
    for it in items:
        counts = by_family.get(family(it.fact_key)) if it.fact_key else None
        counts = counts or by_category.get(it.category)
        if not counts:
            out.append(Prediction(it.id, PRIOR_NAME, ROLE_PRIOR, reply="", final_answer=None,
                                  detail="no train answer for this kind of question"))  # fmt: skip
            continue
        final = counts.most_common(1)[0][0]
        reply = assistant_content("", final)
        out.append(
            Prediction(it.id, PRIOR_NAME, ROLE_PRIOR, reply=reply, final_answer=parse_final_answer(reply))
        )
    return out


# ------------------------------------------------------------------------------------------------ LLMs
def answer_endpoint(endpoint: ModelEndpoint) -> ModelEndpoint:
    """A teacher as an answerer: free text (the student's format), not the JSON it generated pairs with, and sync
    calls whatever its `batch` switch says (an answer's latency is measured), so previews price them as sync."""
    sync = endpoint.batch.model_copy(update={"enabled": False})
    return endpoint.model_copy(update={"response_format": "text", "batch": sync})


def teacher_max_tokens(endpoint: ModelEndpoint, max_new_tokens: int) -> int:
    return max(endpoint.max_tokens, max_new_tokens) if is_reasoning_model(endpoint) else max_new_tokens


def llm_identity(endpoint: ModelEndpoint, temperature: float | None) -> dict[str, Any]:
    return {
        "kind": "llm",
        "name": endpoint.name,
        "model": endpoint.model,
        "gguf": endpoint.local_gguf if endpoint.local else None,
        "repeat_penalty": endpoint.repeat_penalty if endpoint.local else None,
        "response_format": endpoint.response_format,
        "temperature": None if is_reasoning_model(endpoint) else temperature,
        "reasoning_effort": endpoint.reasoning_effort,
    }


def in_flight(endpoint: ModelEndpoint) -> int:
    """Requests a timed batch keeps in flight: `concurrency` per server (one per replica when served)."""
    return endpoint.concurrency * max(1, endpoint.replicas)


@dataclass
class AnswerPlan:
    """What a model still has to answer: the items missing from the prediction cache, and their requests."""

    endpoint: ModelEndpoint
    keys: dict[str, str]
    cached: dict[str, Prediction]
    missing: list[EvalItem]
    requests: list[LLMRequest]


def answer_plan(
    endpoint: ModelEndpoint,
    items: Sequence[EvalItem],
    params: Params,
    cache: PredictionCache,
    *,
    role: str = ROLE_TEACHER,
    identity: Mapping[str, Any] | None = None,
) -> AnswerPlan:
    """The requests `teacher_predictions` sends (also what the cost preview counts), grouped by context."""
    endpoint = answer_endpoint(endpoint)
    max_tokens = teacher_max_tokens(endpoint, params.evaluate.max_new_tokens)
    identity = identity or llm_identity(endpoint, 0.0)
    keys = {it.id: prediction_key(identity, it.id, it.prompt_hash, max_tokens) for it in items}
    out: dict[str, Prediction] = {}
    for it in items:
        if (hit := cache.get(keys[it.id])) is not None:
            out[it.id] = _from_cache(it, endpoint.name, role, hit)
    missing = sorted((it for it in items if it.id not in out), key=lambda it: it.context_id)
    requests = [
        LLMRequest(
            messages=it.messages,
            tag=it.category,
            max_tokens=max_tokens,
            temperature=0.0,
            affinity=it.context_id,
        )
        for it in missing
    ]
    return AnswerPlan(endpoint, keys, out, missing, requests)


def teacher_predictions(
    endpoint: ModelEndpoint,
    items: Sequence[EvalItem],
    params: Params,
    cache: PredictionCache,
    llm: LLMSession,
    *,
    role: str = ROLE_TEACHER,
    identity: Mapping[str, Any] | None = None,
) -> tuple[list[Prediction], str]:
    """A teacher's answers (cached where present); a local teacher's server starts only if answers are missing
    (`serving` leaves an endpoint that has a base_url as it is). Returns the predictions and a one-line summary.

    A served student comes through here too (`role`, and the `identity` of its weights). Items are asked grouped
    by context, so a local server reuses the snapshot's prompt prefix from one question to the next."""
    plan = answer_plan(endpoint, items, params, cache, role=role, identity=identity)
    endpoint, keys, out, missing, requests = (
        plan.endpoint,
        plan.keys,
        plan.cached,
        plan.missing,
        plan.requests,
    )
    summary = f"{endpoint.name}: {len(items) - len(missing)} answers from the prediction cache"
    if not missing:
        return [out[it.id] for it in items], summary

    def keep(index: int, result: LLMResult) -> None:
        it = missing[index]
        latency = result.latency_s or 0.0
        if result.ok or result.failure == "refusal":
            reply = result.value if result.ok else (result.text or "")
            sent = result.calls > 0  # 0: served by the request cache, so neither time nor usage was measured
            p = Prediction(
                it.id, endpoint.name, role, reply=reply, final_answer=parse_final_answer(reply),
                status="ok" if result.ok else "refusal", latency_s=round(latency, 4) if sent else None,
                input_tokens=result.input_tokens if sent else None,
                output_tokens=result.output_tokens if sent else None, detail=result.detail,
                gen_share_s=round(latency / in_flight(endpoint), 5) if sent and role != ROLE_TEACHER else None,
            )  # fmt: skip
            cache.put(keys[it.id], endpoint.name, it.id, _to_cache(p))
        else:
            p = Prediction(it.id, endpoint.name, role, reply=None, final_answer=None,
                           status=f"failed:{result.failure}", detail=result.detail[:300])  # fmt: skip
        out[it.id] = p

    with serving([endpoint]) as ready:
        batch = FailureWatch(ready[0], "teacher" if role == ROLE_TEACHER else "student", len(missing), then=keep).run(
            run_batch, ready[0], requests, cache=llm.request_cache, ledger=llm.ledger, budget=llm.budget,
            progress=llm.progress, desc=f"{'teacher ' if role == ROLE_TEACHER else ''}{endpoint.name}", timed=True,
        )  # fmt: skip
    results, elapsed = batch.results, batch.elapsed_s
    failed = sum(not (r.ok or r.failure == "refusal") for r in results)
    calls = sum(r.calls for r in results)
    summary += f"; {len(missing)} asked in {elapsed:.1f} s ({calls} calls sent, {failed} failed)"
    return [out[it.id] for it in items], summary
