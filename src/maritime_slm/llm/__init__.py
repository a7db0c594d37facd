"""The one door to any model server (the OpenAI API or the local llama.cpp server).

Used by the generator (teachers), the curator (editor) and the evaluator (judge); it knows nothing about AIS.
A request goes through the cache, the budget, the rate limiter and retries, and ends as an `LLMResult`
(an ok value or a recorded failure); the ledger records what every call cost.

    from maritime_slm.llm import Budget, Ledger, LLMRequest, RequestCache, run_batch, serving

    with (
        serving(params.generate.teachers) as teachers,  # starts the local llama.cpp server if one is local
        Ledger(stage_dir / "llm") as ledger,  # ledger.csv + calls.jsonl
        RequestCache(cache_dir / "requests.db") as cache,
    ):
        budget = Budget(params.generate.budget_usd or None, spent_usd=ledger.total_usd())
        for teacher in teachers:
            line = budget.line(teacher.budget_usd)  # its own cap, within the stage's
            requests = [LLMRequest.chat(prompt, system=SYSTEM, output=QAPair, tag=category) for ...]
            batch = run_batch(teacher, requests, cache=cache, ledger=ledger, budget=line)  # Batch API if teacher.batch
            print(batch.summary())  # says whether its line (or the stage's budget) stopped it
            pairs = [r.value for r in batch if r.ok]
"""

from .batch import BatchAPIError, run_batch
from .budget import Budget, BudgetExceeded
from .cache import CachedResponse, RequestCache, request_key
from .client import LLMClient, is_reasoning_model, run_sync
from .ledger import LEDGER_COLUMNS, Ledger, LedgerRow, ledger_rows, read_log
from .request import FAILURE_KINDS, BatchResult, FailureKind, LLMRequest, LLMResult, lanes
from .retry import Backoff
from .secrets import MissingAPIKey
from .server import LocalServerError, find_gguf, find_smollm2_gguf, local_server, serving
from .session import LLMSession, llm_session

__all__ = [
    "LLMSession",
    "llm_session",
    "FAILURE_KINDS",
    "LEDGER_COLUMNS",
    "Backoff",
    "BatchAPIError",
    "BatchResult",
    "Budget",
    "BudgetExceeded",
    "CachedResponse",
    "FailureKind",
    "LLMClient",
    "LLMRequest",
    "LLMResult",
    "Ledger",
    "LedgerRow",
    "LocalServerError",
    "MissingAPIKey",
    "RequestCache",
    "find_gguf",
    "find_smollm2_gguf",
    "is_reasoning_model",
    "lanes",
    "ledger_rows",
    "local_server",
    "read_log",
    "request_key",
    "run_batch",
    "run_sync",
    "serving",
]
