"""The students answering through the door a user gets: their GGUF export (04_finetune) behind the local
llama.cpp server, asked through `maritime_slm.llm` (request cache, ledger, retries, failure thresholds) exactly like
the teachers.

One request in flight per server (the llama-cpp-python server has one slot; `student_replicas` servers split the
threads), items grouped by snapshot so a server reuses the prompt prefix; `latency_s` is one request's wall time and
its share of the pool's time is latency / servers, so throughput is servers / mean latency. The Hugging Face
`generate` path stays the reference: `agreement` answers a category-spread subset both ways, with every exported
quantization, and counts the items whose final answer is the same.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from maritime_slm.config import ModelEndpoint, Params
from maritime_slm.evaluate.cache import PredictionCache, file_hash
from maritime_slm.evaluate.items import EvalItem
from maritime_slm.evaluate.predict import (
    Loader,
    Prediction,
    student_predictions,
    teacher_predictions,
)
from maritime_slm.evaluate.score import score_predictions
from maritime_slm.llm.session import LLMSession

logger = logging.getLogger(__name__)

QUANTS = ("f16", "q8_0", "q4_k_m")
GGUF_NAMES = {"student_tuned": "student", "student_base": "base"}


def gguf_path(finetune_dir: Path, role: str, quant: str) -> Path:
    """Where 04_finetune wrote the GGUF of the tuned (`student.*`) or base (`base.*`) student."""
    return Path(finetune_dir) / "export" / "gguf" / f"{GGUF_NAMES[role]}.{quant.upper()}.gguf"


def served_runtime(quant: str, replicas: int) -> str:
    """How the served student answered, for the speed table and the cost model's inputs."""
    if replicas == 1:
        return f"llama.cpp {quant.upper()} (1 in flight)"
    return f"llama.cpp {quant.upper()} ({replicas} servers, 1 in flight each)"


STUDENT_REPEAT_PENALTY = 1.0
"""No repeat penalty (llama.cpp's server default is 1.1 over the last 64 tokens, prompt included): the student copies
values out of its snapshot, and its greedy answers must match the Hugging Face reference, which applies none."""


def served_endpoint(name: str, gguf: Path, params: Params) -> tuple[ModelEndpoint, dict[str, Any]]:
    """The endpoint of a student GGUF on a local server started on demand, and the identity of its answers.

    The served model name carries the GGUF's hash, so neither cache can hand a retrained student stale answers."""
    sha = file_hash(gguf)
    endpoint = ModelEndpoint(
        name=name,
        model=f"{name}-{sha}",
        local=True,
        local_gguf=str(gguf),
        response_format="text",
        temperature=0.0,
        repeat_penalty=STUDENT_REPEAT_PENALTY,
        max_tokens=params.evaluate.max_new_tokens,
        replicas=params.evaluate.student_replicas,
        concurrency=1,
        timeout_s=120,
        max_retries=2,
    )
    identity = {"kind": "served_student", "runtime": "llama.cpp", "gguf_sha256": sha, "decoding": "greedy",
                "repeat_penalty": STUDENT_REPEAT_PENALTY}  # fmt: skip
    return endpoint, identity


def served_predictions(
    items: Sequence[EvalItem],
    gguf: Path,
    name: str,
    role: str,
    params: Params,
    cache: PredictionCache,
    llm: LLMSession,
) -> tuple[list[Prediction], str]:
    """A student's answers from its GGUF behind llama.cpp; the server starts only if answers are missing."""
    endpoint, identity = served_endpoint(name, gguf, params)
    return teacher_predictions(endpoint, items, params, cache, llm, role=role, identity=identity)


def agreement_rows(
    quant: str, served: Sequence[Prediction], reference: Sequence[Prediction], scored: pl.DataFrame
) -> dict[str, Any]:
    """One row of the agreement table: how often a served quantization gives the HF reference's final answer."""
    ref = {p.item_id: p for p in reference}
    pairs = [(p, ref[p.item_id]) for p in served if p.answered and ref[p.item_id].answered]
    same = sum(p.final_answer == r.final_answer for p, r in pairs)
    grounded = {(r["model"], r["item_id"]): r["grounded"] for r in scored.iter_rows(named=True)}
    ids = [p.item_id for p, _ in pairs]

    def acc(model: str) -> float | None:
        known = [grounded.get((model, i)) for i in ids]
        known = [g for g in known if g is not None]
        return sum(known) / len(known) if known else None

    return {
        "quantization": quant.upper(),
        "n_items": len(pairs),
        "same_final_answer": same,
        "agreement": same / len(pairs) if pairs else None,
        "flipped": len(pairs) - same,
        "accuracy_hf": acc(reference[0].model) if reference else None,
        "accuracy_served": acc(served[0].model) if served else None,
    }


@dataclass
class Students:
    """What answering as a student needs: where 04_finetune left the adapter and the GGUF, the params, the caches
    and the LLM plumbing (`loader` replaces the Hugging Face load in tests)."""

    finetune_dir: Path
    params: Params
    cache: PredictionCache
    llm: LLMSession
    loader: Loader | None = None
    progress: bool = True

    def _hf(
        self, items: Sequence[EvalItem], name: str, role: str, adapter_dir: Path | None, upcast: bool = False
    ) -> list[Prediction]:
        return student_predictions(
            items, self.params, self.cache, adapter_dir=adapter_dir, name=name, role=role, loader=self.loader,
            progress=self.progress, upcast=upcast,
        )  # fmt: skip

    def answers(
        self, items: Sequence[EvalItem], name: str, role: str, adapter_dir: Path | None
    ) -> tuple[list[Prediction], str, str]:
        """The base (`adapter_dir=None`) or tuned student's answers, through `evaluate.student_runtime`.

        Returns (predictions, the runtime that answered, a one-line summary). A missing GGUF (export skipped or
        failed) falls back to Hugging Face generate and the runtime says why."""
        ev = self.params.evaluate
        if ev.student_runtime == "llama.cpp":
            gguf = gguf_path(self.finetune_dir, role, ev.student_quant)
            if gguf.is_file():
                answers, summary = served_predictions(
                    items, gguf, name, role, self.params, self.cache, self.llm
                )
                return answers, served_runtime(ev.student_quant, ev.student_replicas), summary
            runtime = f"hf (no {gguf.name} in {gguf.parent}: see the finetune stage's export record)"
            logger.warning("%s: %s", name, runtime)
        else:
            runtime = f"hf (batch {ev.batch_size})"
        return self._hf(items, name, role, adapter_dir), runtime, ""

    def hf_agreement(
        self,
        items: Sequence[EvalItem],
        served: Sequence[Prediction],
        adapter_dir: Path,
        by_id: Mapping[str, EvalItem],
        facts: Mapping[str, list[dict[str, Any]]],
        contexts: Mapping[str, Mapping[str, Any]],
    ) -> tuple[list[Prediction], pl.DataFrame]:
        """The tuned student on `items` through Hugging Face generate in float32 (the reference) and through every
        exported quantization; returns the reference predictions and a row per quantization (same final answer,
        accuracies).

        float32, not the training dtype: llama.cpp computes in float32 over 16-bit weights, while a bf16 forward
        rounds every activation; measured on the default run, bf16 HF and float32 HF already differ on 2 of 32 final
        answers, float32 HF and the served F16 on none (identical replies)."""
        role, name = served[0].role, served[0].model
        ids = {it.id for it in items}
        reference = self._hf(items, f"{name}-hf", role, adapter_dir, upcast=True)
        by_quant = {self.params.evaluate.student_quant: [p for p in served if p.item_id in ids]}
        for quant in QUANTS:
            gguf = gguf_path(self.finetune_dir, role, quant)
            if quant not in by_quant and gguf.is_file():
                by_quant[quant], _ = served_predictions(
                    items, gguf, f"{name}-{quant}", role, self.params, self.cache, self.llm
                )
        answered = [p for answers in by_quant.values() for p in answers]
        scored = score_predictions([*reference, *answered], by_id, facts, contexts, None)
        rows = [agreement_rows(q, by_quant[q], reference, scored) for q in QUANTS if q in by_quant]
        return reference, pl.DataFrame(rows)
