"""Evaluation (notebook 05): the student (base and tuned), the teachers and the rules oracle answer the held-out
test set; grounded scoring (the curate verifier) and an LLM judge; Wilson CIs, exact McNemar, Cohen's kappa; the
BLEU/ROUGE "evaluation paradox"; table_5, table_6 and figure_5.

    from maritime_slm.evaluate.run import run

    result = run(stage)  # writes the EvaluateRecord (`_stage.json`) the cost stage reads
"""

from maritime_slm.evaluate.items import EvalItem, load_items
from maritime_slm.evaluate.judge import JudgeGrade, judge_messages, judge_predictions, parse_grade
from maritime_slm.evaluate.predict import (
    Prediction,
    oracle_predictions,
    student_predictions,
    teacher_predictions,
)
from maritime_slm.evaluate.run import evaluate_run, prediction_cache_dir
from maritime_slm.evaluate.score import score_predictions
from maritime_slm.evaluate.stats import (
    accuracy,
    cohens_kappa_ci,
    correlations,
    kappa_from_table,
    mcnemar_exact,
    mcnemar_from_counts,
    wilson_ci,
)

__all__ = [
    "EvalItem",
    "JudgeGrade",
    "Prediction",
    "accuracy",
    "cohens_kappa_ci",
    "correlations",
    "evaluate_run",
    "judge_messages",
    "judge_predictions",
    "kappa_from_table",
    "load_items",
    "mcnemar_exact",
    "mcnemar_from_counts",
    "oracle_predictions",
    "parse_grade",
    "prediction_cache_dir",
    "score_predictions",
    "student_predictions",
    "teacher_predictions",
    "wilson_ci",
]
