"""The cost preview: what a stage's model calls will cost, counted from the requests it is about to send.

Before its first paid request a stage (generate, curate's revision, evaluate's teacher answers and judge) builds
every request body exactly as the client will (`client.first_request`), leaves out those the request cache
already answered, and counts each prompt with the model's own tokenizer (`tokens.py`). Per role it reports:

- requests and input tokens, and of those the *cached prefix*: OpenAI caches prompts of 1024 tokens or more and
  bills a later prompt's shared prefix, in steps of 128 tokens, at the cached price. The preview replays that rule
  over the requests in the order they are sent (each against the prompts before it), so the requests about one
  context, which share its snapshot, show what they save;
- output tokens: the ceiling (every reply at `max_tokens`; a reasoning model's hidden reasoning is billed as output
  and counts against the same limit) and, where this run folder has replies of the same model and stage already,
  the expected figure from their mean;
- USD, synchronous and through the Batch API (50 % of both input and output prices). The *ceiling* prices every
  input token at the uncached price and every reply at `max_tokens`; the *expected* figure prices the cached
  prefix at the cached price and the output at the measured mean (or the ceiling where none was measured); the
  batch expected figure does not count cache hits (OpenAI does not promise them for batch requests).

Re-asks and retries are not in it: they are rare, and the budget still caps them call by call. A stage refuses to
start when a role's ceiling exceeds what its budget line has left, or the stage's ceiling what the stage's budget
has left (`CostOverBudget`), unless its `refuse_over_budget` is false.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ModelEndpoint
from .cache import RequestCache
from .client import first_request, is_reasoning_model
from .ledger import cost_usd, read_log
from .request import LLMRequest
from .tokens import PromptTokenizer, tokenizer_for

CACHE_MIN_TOKENS = 1024
CACHE_INCREMENT_TOKENS = 128
"""OpenAI prompt caching (platform.openai.com/docs/guides/prompt-caching): prompts of 1024 tokens or more, cache
hits in increments of 128 tokens."""
BATCH_PRICE_SHARE = 0.5
"""The Batch API bills input and output at half the synchronous price."""
PREVIEW_FILE = "cost_preview.json"


class CostOverBudget(RuntimeError):
    """A stage's cost preview does not fit in its budget (one line: what, how much, which key to raise)."""


class PrefixCache:
    """OpenAI's prompt cache replayed over token sequences, one model at a time: a prompt's cached tokens are its
    longest prefix shared with an earlier prompt, in 128-token steps, when that is at least 1024 tokens.

    Prompts are grouped by their first 1024 tokens (only prompts sharing those can share a cached prefix); the
    most recent groups are kept, as the real cache keeps a prefix for minutes, not for a whole run."""

    def __init__(self, groups: int = 64, per_group: int = 32):
        self._groups: OrderedDict[bytes, list[np.ndarray]] = OrderedDict()
        self._max_groups = groups
        self._per_group = per_group

    def cached_tokens(self, tokens: np.ndarray) -> int:
        """This prompt's cached tokens; it is then cached for the prompts after it."""
        if len(tokens) < CACHE_MIN_TOKENS:
            return 0
        key = hashlib.sha256(np.ascontiguousarray(tokens[:CACHE_MIN_TOKENS]).tobytes()).digest()
        group = self._groups.get(key)
        best = 0
        if group is None:
            group = self._groups[key] = []
            if len(self._groups) > self._max_groups:
                self._groups.popitem(last=False)
        else:
            self._groups.move_to_end(key)
            for earlier in group:
                best = max(best, _common_prefix(tokens, earlier))
        group.append(tokens)
        if len(group) > self._per_group:
            group.pop(0)
        cached = (best // CACHE_INCREMENT_TOKENS) * CACHE_INCREMENT_TOKENS
        return cached if cached >= CACHE_MIN_TOKENS else 0


def _common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    differ = np.flatnonzero(a[:n] != b[:n])
    return int(differ[0]) if len(differ) else n


@dataclass
class RolePreview:
    """One role's share of a stage (a teacher, the editor, the judge, a teacher's answers)."""

    role: str
    endpoint: str
    model: str
    local: bool = False
    tokenizer: str = ""
    exact_tokens: bool = True
    requests: int = 0
    from_cache: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens_ceiling: int = 0
    output_tokens_expected: int | None = None
    expected_from: str = ""
    reasoning_model: bool = False
    usd_ceiling: float = 0.0
    usd_ceiling_batch: float = 0.0
    usd_expected: float = 0.0
    usd_expected_batch: float = 0.0
    batch: bool = False
    line_key: str | None = None
    line_usd: float | None = None
    line_spent_usd: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def checked_usd(self) -> float:
        """What the refusal compares: the ceiling at the prices this role will pay (batch or not)."""
        return self.usd_ceiling_batch if self.batch else self.usd_ceiling

    def price(self, endpoint: ModelEndpoint) -> None:
        p_in, p_out, p_cached = (
            endpoint.price_in_per_m,
            endpoint.price_out_per_m,
            endpoint.price_cached_in_per_m,
        )
        self.usd_ceiling = cost_usd(self.input_tokens, self.output_tokens_ceiling, p_in, p_out)
        self.usd_ceiling_batch = BATCH_PRICE_SHARE * self.usd_ceiling
        output = (
            self.output_tokens_ceiling if self.output_tokens_expected is None else self.output_tokens_expected
        )
        self.usd_expected = cost_usd(
            self.input_tokens, output, p_in, p_out, self.cached_input_tokens, p_cached
        )
        self.usd_expected_batch = BATCH_PRICE_SHARE * cost_usd(self.input_tokens, output, p_in, p_out)


def preview_role(
    role: str,
    endpoint: ModelEndpoint,
    requests: Iterable[LLMRequest],
    *,
    request_cache: RequestCache | None = None,
    tokenizer: PromptTokenizer | None = None,
    line_key: str | None = None,
    line_usd: float | None = None,
    line_spent_usd: float = 0.0,
    expected_output: tuple[float, str] | None = None,
    batch: bool | None = None,
) -> RolePreview:
    """Count one role's requests (first rounds, in the order they are sent); a local endpoint is only listed.

    `expected_output`: (mean output tokens per reply, where that mean comes from), e.g. from `measured_output`.
    `batch`: whether the role pays batch prices; None = the endpoint's own switch (`endpoint.batch`).
    """
    batch = endpoint.batch.enabled if batch is None else batch
    out = RolePreview(role, endpoint.name, endpoint.model, local=endpoint.local, batch=batch,
                      reasoning_model=is_reasoning_model(endpoint), line_key=line_key, line_usd=line_usd,
                      line_spent_usd=line_spent_usd)  # fmt: skip
    if endpoint.local:
        out.tokenizer, out.requests = "local", sum(1 for _ in requests)
        return out
    tokenizer = tokenizer or tokenizer_for(endpoint)
    out.tokenizer, out.exact_tokens = tokenizer.name, tokenizer.exact
    prefixes = PrefixCache()
    for request in requests:
        body, key = first_request(endpoint, request)
        if request_cache is not None and key in request_cache:
            out.from_cache += 1
            continue
        tokens = tokenizer.prompt_tokens(body)
        out.requests += 1
        out.input_tokens += len(tokens)
        out.cached_input_tokens += prefixes.cached_tokens(tokens)
        out.output_tokens_ceiling += int(body.get("max_tokens") or body.get("max_completion_tokens") or 0)
    if expected_output is not None:
        mean, source = expected_output
        out.output_tokens_expected = min(out.output_tokens_ceiling, round(mean * out.requests))
        out.expected_from = source
    out.price(endpoint)
    return out


def measured_output(
    log_path: Path, endpoint: str, tags: Sequence[str] | None = None
) -> tuple[float, str] | None:
    """Mean output tokens of the replies this endpoint already sent in a stage's call log (a resumed run)."""
    counts = [
        int(e.get("output_tokens") or 0)
        for e in read_log(log_path)
        if e.get("event") == "attempt"
        and e.get("status") == "ok"
        and e.get("teacher") == endpoint
        and (tags is None or e.get("category") in tags)
    ]
    if not counts:
        return None
    return sum(counts) / len(
        counts
    ), f"mean of {len(counts)} replies in {log_path.parent.name}/{log_path.name}"


@dataclass
class CostPreview:
    """A stage's preview: its roles, and its budget (`budget_key` names it for the user)."""

    stage: str
    roles: list[RolePreview]
    budget_key: str
    budget_usd: float
    spent_usd: float = 0.0
    scale_note: str = ""

    def total(self, column: str) -> float:
        return sum(getattr(r, column) or 0 for r in self.roles)

    @property
    def checked_usd(self) -> float:
        return sum(r.checked_usd for r in self.roles)

    def problems(self) -> list[str]:
        """Why the stage must not start (empty when it fits)."""
        found = []
        for r in self.roles:
            if r.line_usd is not None and r.checked_usd > r.line_usd - r.line_spent_usd + 1e-9:
                found.append(
                    f"{r.role} {r.endpoint}'s ceiling ${r.checked_usd:,.2f} exceeds what its line "
                    f"{r.line_key} ${r.line_usd:,.2f} has left (${max(0.0, r.line_usd - r.line_spent_usd):,.2f})"
                )
        left = max(0.0, self.budget_usd - self.spent_usd)
        if self.checked_usd > left + 1e-9:
            found.append(
                f"the stage's ceiling ${self.checked_usd:,.2f} exceeds what {self.budget_key} "
                f"${self.budget_usd:,.2f} has left (${left:,.2f})"
            )
        return found

    def check(self, refuse: bool, refuse_key: str) -> None:
        """Raise CostOverBudget (one line) when the preview does not fit and the stage refuses to start."""
        problems = self.problems()
        if problems and refuse:
            raise CostOverBudget(
                f"{self.stage} refused to start before its first paid request: {'; '.join(problems)}. Raise the "
                f"budget (or set {refuse_key}=false to start anyway and stop at the cap); the preview is in "
                f"{PREVIEW_FILE}"
            )

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "budget_key": self.budget_key,
            "budget_usd": self.budget_usd,
            "spent_usd": round(self.spent_usd, 6),
            "ceiling_usd": round(self.total("usd_ceiling"), 6),
            "ceiling_usd_batch": round(self.total("usd_ceiling_batch"), 6),
            "expected_usd": round(self.total("usd_expected"), 6),
            "expected_usd_batch": round(self.total("usd_expected_batch"), 6),
            "problems": self.problems(),
            "scale_note": self.scale_note,
            "roles": [asdict(r) for r in self.roles],
        }

    def write(self, folder: Path) -> Path:
        """`cost_preview.json` in the stage folder (atomically)."""
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / PREVIEW_FILE
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        os.replace(tmp, path)
        return path

    def table(self) -> str:
        """One short text table: a row per role and the stage's total."""
        head = ("role", "model", "requests", "input tok", "cached prefix", "output tok max", "output tok exp",
                "USD max sync", "batch", "USD exp sync", "batch", "line")  # fmt: skip
        rows = [head]
        for r in self.roles:
            if r.local:
                rows.append((f"{r.role} {r.endpoint}", r.model, f"{r.requests:,}", "local: $0", *[""] * 8))
                continue
            share = f" ({100 * r.cached_input_tokens / r.input_tokens:.0f} %)" if r.input_tokens else ""
            expected = "-" if r.output_tokens_expected is None else f"{r.output_tokens_expected:,}"
            line = "-" if r.line_usd is None else f"${r.line_usd:,.2f}"
            cached = f" (+{r.from_cache:,} cached)" if r.from_cache else ""
            rows.append((f"{r.role} {r.endpoint}", r.model, f"{r.requests:,}{cached}", f"{r.input_tokens:,}",
                         f"{r.cached_input_tokens:,}{share}", f"{r.output_tokens_ceiling:,}", expected,
                         f"${r.usd_ceiling:,.2f}", f"${r.usd_ceiling_batch:,.2f}", f"${r.usd_expected:,.2f}",
                         f"${r.usd_expected_batch:,.2f}", line))  # fmt: skip
        rows.append(("total", "", f"{int(self.total('requests')):,}", f"{int(self.total('input_tokens')):,}",
                     f"{int(self.total('cached_input_tokens')):,}", f"{int(self.total('output_tokens_ceiling')):,}",
                     "", f"${self.total('usd_ceiling'):,.2f}", f"${self.total('usd_ceiling_batch'):,.2f}",
                     f"${self.total('usd_expected'):,.2f}", f"${self.total('usd_expected_batch'):,.2f}",
                     f"${self.budget_usd:,.2f}"))  # fmt: skip
        widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
        lines = [f"cost preview: {self.stage} ({self.budget_key} ${self.budget_usd:,.2f}, "
                 f"already spent ${self.spent_usd:,.2f})"]  # fmt: skip
        for row in rows:
            lines.append("  ".join(str(v).rjust(w) if i > 1 else str(v).ljust(w)
                                   for i, (v, w) in enumerate(zip(row, widths, strict=True))))  # fmt: skip
        tokenizers = sorted({f"{r.endpoint}: {r.tokenizer}" for r in self.roles if not r.local})
        if tokenizers:
            lines.append("tokens: " + "; ".join(tokenizers))
        for r in self.roles:
            if r.output_tokens_expected is None and not r.local and r.requests:
                lines.append(f"{r.endpoint}: no reply measured yet, expected output = the max_tokens ceiling")
            elif r.expected_from:
                lines.append(f"{r.endpoint}: expected output from the {r.expected_from}")
            lines += [f"{r.endpoint}: {note}" for note in r.notes]
        if self.scale_note:
            lines.append(self.scale_note)
        for problem in self.problems():
            lines.append(f"OVER BUDGET: {problem}")
        return "\n".join(lines)


def announce(preview: CostPreview, stage_dir: Path, refuse: bool, refuse_key: str) -> CostPreview:
    """Print the table, record it in the stage folder, then refuse (CostOverBudget) if it does not fit."""
    print(preview.table(), flush=True)
    preview.write(stage_dir)
    preview.check(refuse, refuse_key)
    return preview
