"""Curate (notebook 03): verify every pair against its facts, analyze teacher errors, revise wrong pairs with an
editor model (Analyze-Revise-Finetune), re-verify, dedup, split without leakage, export for training.

`curate_run` does it all; the pieces are importable for notebooks, training and evaluation:
`maritime_slm.curate.verify.verify` / `check_final_answer` (the grounded checker; `verify` itself is not
re-exported here, where it would shadow its module), `STUDENT_SYSTEM_PROMPT` / `chat_messages` /
`user_content` (the student's message format; its answer line is `maritime_slm.answers`).
"""

from .analyze import error_rates, teacher_summary, wilson_ci
from .dedup import dedup_pairs
from .export import STUDENT_SYSTEM_PROMPT, chat_messages, export_dataset, user_content
from .revise import EditJob, EditorFn, EditorRevision, revise_pairs, run_revision
from .run import curate_run
from .split import context_components, decontamination, split_pairs
from .verify import ERROR_DESCRIPTIONS, ERROR_TYPES, check_final_answer, verify_pairs

__all__ = [
    "ERROR_DESCRIPTIONS",
    "ERROR_TYPES",
    "STUDENT_SYSTEM_PROMPT",
    "EditJob",
    "EditorFn",
    "EditorRevision",
    "chat_messages",
    "check_final_answer",
    "context_components",
    "curate_run",
    "decontamination",
    "dedup_pairs",
    "error_rates",
    "export_dataset",
    "revise_pairs",
    "run_revision",
    "split_pairs",
    "teacher_summary",
    "user_content",
    "verify_pairs",
    "wilson_ci",
]
