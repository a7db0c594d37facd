"""Fine-tuning the student (notebook 04) and loading it for evaluation (notebook 05).

Two backends share one recipe and one dataset: `unsloth` (default; Unsloth's FastLanguageModel, its CPU fallback
when there is no GPU) and `hf` (plain transformers + peft + trl). Importing this package is cheap: the training
libraries load when a function needs them, Unsloth first (call `import_backend('unsloth')` at the top of a
notebook that will also import transformers).

    from maritime_slm.finetune import finetune_run, load_for_inference, generate_answers
"""

from maritime_slm.finetune.backend import BackendUnavailable, Recipe, derive_recipe, import_backend
from maritime_slm.finetune.model import generate_answers, load_for_inference, student_source
from maritime_slm.finetune.run import FinetuneResult, finetune_run, train_student

__all__ = [
    "BackendUnavailable",
    "FinetuneResult",
    "Recipe",
    "derive_recipe",
    "finetune_run",
    "generate_answers",
    "import_backend",
    "load_for_inference",
    "student_source",
    "train_student",
]
