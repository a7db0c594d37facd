"""What a notebook needs to be one stage of a run: its params, its output folder, earlier stages' folders.

The runner executes a notebook with `stage_dir` pointing at a temporary folder and renames it into place only
when the notebook finished, so a crash never leaves half a stage. Opened by hand in JupyterLab (no `run_dir`),
a notebook writes straight into `outputs/<run_name>/<stage>/`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from maritime_slm.config import OUTPUTS_DIR, Params, check_run_name, dump_params, load_params, load_resolved

# Notebook file stem -> stage folder, in pipeline order. Data flows forward only along this list.
STAGES: dict[str, str] = {
    "01_ingest": "ingest",
    "02_generate": "generate",
    "03_curate": "curate",
    "04_finetune": "finetune",
    "05_evaluate": "evaluate",
    "06_cost_analysis": "cost",
}
STAGE_ORDER = list(STAGES.values())
SUMMARY_FILE = "_stage.json"


@dataclass
class Stage:
    name: str
    params: Params
    run_dir: Path
    dir: Path

    @classmethod
    def open(cls, name: str, run_name: str, profile: str, run_dir: str = "", stage_dir: str = "") -> Stage:
        if name not in STAGE_ORDER:
            raise ValueError(f"unknown stage '{name}' (stages: {', '.join(STAGE_ORDER)})")
        if run_dir:
            run_path = Path(run_dir)
            params = load_resolved(run_path)
        else:
            run_path = OUTPUTS_DIR / check_run_name(run_name, "run_name")
            params = load_params(profile)
            run_path.mkdir(parents=True, exist_ok=True)
            (run_path / "params.yaml").write_text(dump_params(params))
        out = Path(stage_dir) if stage_dir else run_path / name
        out.mkdir(parents=True, exist_ok=True)
        if params.emulator:
            from maritime_slm.dryrun import ensure_emulator

            ensure_emulator()  # the runner's, or this kernel's own when the notebook is opened by hand
        return cls(name=name, params=params, run_dir=run_path, dir=out)

    @property
    def paper_dir(self) -> Path:
        """Paper artifacts of this stage; the runner also copies them to `<run>/paper/`."""
        path = self.dir / "paper"
        path.mkdir(exist_ok=True)
        return path

    def section_yaml(self, section: str) -> str:
        """One params section as YAML, for the notebook to show what it runs with."""
        return yaml.safe_dump(
            {section: getattr(self.params, section).model_dump(mode="json")}, sort_keys=False
        )

    def input(self, stage: str) -> Path:
        """The committed folder of an *earlier* stage (reading a later one would break the DAG)."""
        if stage not in STAGE_ORDER:
            raise ValueError(f"unknown stage '{stage}' (stages: {', '.join(STAGE_ORDER)})")
        if STAGE_ORDER.index(stage) >= STAGE_ORDER.index(self.name):
            raise ValueError(f"stage '{self.name}' may only read earlier stages, not '{stage}'")
        path = self.run_dir / stage
        if not path.is_dir():
            raise FileNotFoundError(
                f"stage '{self.name}' needs '{stage}' outputs at {path}: run that stage first"
            )
        return path

    def record(self, **summary: Any) -> None:
        """Numbers the runner merges into this stage's manifest entry (row counts, rates, timings)."""
        path = self.dir / SUMMARY_FILE
        current = json.loads(path.read_text()) if path.exists() else {}
        current.update(summary)
        path.write_text(json.dumps(current, indent=2, default=str))
