"""What a notebook needs to be one stage of a run: its params, its output folder, earlier stages' folders, and
one shape for what a stage hands on.

Every stage is `run(stage: Stage) -> StageResult` in its package's `run.py` (ingest: `ais`, generate: `facts` then
`generate`, curate, finetune: `train`, evaluate, cost). The result's `record` is a typed `StageRecord` that writes
`_stage.json` itself; the runner merges it into the manifest and later stages read it back through the same type
(`FinetuneRecord.read(stage.input("finetune"))`), never through keys typed in a notebook.

The runner executes a notebook with `stage_dir` pointing at a temporary folder and renames it into place only
when the notebook finished, so a crash never leaves half a stage. Opened by hand in JupyterLab (no `run_dir`),
a notebook writes straight into `outputs/<run_name>/<stage>/`, with the run's own params once it has some.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Self

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from maritime_slm.config import (
    OUTPUTS_DIR,
    Params,
    ParamsError,
    check_run_name,
    dump_params,
    load_params,
    load_resolved,
)

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
MANIFEST_FILE = "manifest.json"

# The params sections each stage reads; a stage's outputs depend on its own and every earlier stage's sections
# (and on `seed` and `emulator`). `engine` decides where a stage runs, never what it writes.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "ingest": ("ingest",),
    "generate": ("contexts", "facts", "generate"),
    "curate": ("curate",),
    "finetune": ("finetune",),
    "evaluate": ("evaluate",),
    "cost": ("cost",),
}
NOT_RECIPE = ("engine",)
ALWAYS_RECIPE = ("seed", "emulator")


def recipe(params: Params) -> dict[str, Any]:
    """The params that decide a stage's outputs."""
    return params.model_dump(mode="json", exclude=set(NOT_RECIPE))


def params_sha(params: Params) -> str:
    return hashlib.sha256(yaml.safe_dump(recipe(params), sort_keys=False).encode()).hexdigest()[:12]


def flat_keys(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict) and data:
        return {k: v for key, value in data.items() for k, v in flat_keys(value, f"{prefix}{key}.").items()}
    return {prefix.rstrip("."): data}


def upstream_changes(made_with: dict[str, Any], params: dict[str, Any], stage: str) -> list[str]:
    """Params keys that decide `stage`'s outputs and differ between what it was made with and `params`."""
    upto = STAGE_ORDER[: STAGE_ORDER.index(stage) + 1]
    sections = [*ALWAYS_RECIPE, *(s for name in upto for s in STAGE_SECTIONS[name])]
    old = flat_keys({k: made_with.get(k) for k in sections})
    new = flat_keys({k: params.get(k) for k in sections})
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


class StageRecord(BaseModel):
    """The numbers a stage hands on: written as `_stage.json` (the runner merges them into the manifest entry),
    read back by later stages through the subclass that names the fields they rely on. Extra keys (per-model
    accuracies, per-scenario costs) are kept as written."""

    model_config = ConfigDict(extra="allow")

    @classmethod
    def from_summary(cls, summary: dict[str, Any]) -> Self:
        """The record's own fields picked from a stage function's summary (which holds more)."""
        return cls(**{k: summary[k] for k in cls.model_fields})

    def write(self, stage_dir: Path) -> Path:
        path = Path(stage_dir) / SUMMARY_FILE
        path.write_text(json.dumps(self.model_dump(mode="json"), indent=2, default=str))
        return path

    @classmethod
    def read(cls, stage_dir: Path) -> Self:
        path = Path(stage_dir) / SUMMARY_FILE
        if not path.is_file():
            raise ParamsError(f"{path}: missing; the stage that writes it did not finish in this run")
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (ValueError, ValidationError) as exc:
            first = exc.errors()[0] if isinstance(exc, ValidationError) else {"loc": (), "msg": str(exc)}
            key = ".".join(str(p) for p in first["loc"]) or "(file)"
            raise ParamsError(f"{path}: key '{key}': {first['msg']}") from None


@dataclass
class StageResult:
    """What `run(stage)` returns: the record it wrote, and what the notebook shows (tables, frames, figures)."""

    record: StageRecord
    show: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        return self.show[name]


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
            params = _hand_opened_params(run_path, profile)
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

    @property
    def llm_dir(self) -> Path:
        """The run's request cache and logs, shared by every stage that asks a model (a re-run never pays twice)."""
        return self.run_dir / "llm"

    def section_yaml(self, section: str) -> str:
        """One params section as YAML, for the notebook to show what it runs with."""
        return yaml.safe_dump(
            {section: getattr(self.params, section).model_dump(mode="json")}, sort_keys=False
        )

    def input(self, stage: str) -> Path:
        """The committed folder of an *earlier* stage (reading a later one would break the DAG). A folder made with
        other params than this run's (for the keys that decide it) is read with a one-line warning naming them."""
        if stage not in STAGE_ORDER:
            raise ValueError(f"unknown stage '{stage}' (stages: {', '.join(STAGE_ORDER)})")
        if STAGE_ORDER.index(stage) >= STAGE_ORDER.index(self.name):
            raise ValueError(f"stage '{self.name}' may only read earlier stages, not '{stage}'")
        path = self.run_dir / stage
        if not path.is_dir():
            raise FileNotFoundError(
                f"stage '{self.name}' needs '{stage}' outputs at {path}: run that stage first"
            )
        self._warn_if_stale(stage)
        return path

    def inputs_before(self) -> dict[str, Path]:
        """Every earlier stage's committed folder that exists in this run, in pipeline order."""
        earlier = STAGE_ORDER[: STAGE_ORDER.index(self.name)]
        return {s: self.input(s) for s in earlier if (self.run_dir / s).is_dir()}

    @cached_property
    def _manifest_stages(self) -> dict[str, Any]:
        """The run's manifest entries, read once: an earlier stage's entry does not change while this one runs."""
        manifest = self.run_dir / MANIFEST_FILE
        return json.loads(manifest.read_text()).get("stages", {}) if manifest.is_file() else {}

    def _warn_if_stale(self, stage: str) -> None:
        entry = self._manifest_stages.get(stage, {})
        made_with = entry.get("params")
        if made_with is None or entry.get("params_sha") == params_sha(self.params):
            return
        keys = upstream_changes(made_with, recipe(self.params), stage)
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            print(
                f"warning: stage '{self.name}' reads '{stage}', made with other params ({shown}); re-run it with "
                f"`python -m maritime_slm run --stages {_number(stage)}-{_number(self.name)}` to bring it up to date",
                file=sys.stderr,
            )


def _number(stage: str) -> str:
    return f"{STAGE_ORDER.index(stage) + 1:02d}"


def _hand_opened_params(run_path: Path, profile: str) -> Params:
    """A notebook opened by hand uses the run's resolved params when the run has them (never rewriting a finished
    run's `params.yaml`), and writes the profile's only into a new run folder."""
    if (run_path / "params.yaml").is_file():
        params = load_resolved(run_path)
        if params_sha(params) != params_sha(load_params(profile)):
            print(
                f"note: {run_path}/params.yaml differs from params/{profile}.yaml; this notebook uses the run's "
                f"params (start a new run_name, or `python -m maritime_slm run`, to use the profile's)",
                file=sys.stderr,
            )
        return params
    params = load_params(profile)
    run_path.mkdir(parents=True, exist_ok=True)
    (run_path / "params.yaml").write_text(dump_params(params))
    return params
