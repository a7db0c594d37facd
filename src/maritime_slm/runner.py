"""Runs the numbered notebooks of a profile through papermill and keeps the run folder consistent.

Each stage executes into a hidden temporary folder that is renamed into place only when the notebook finished;
the previous version of the stage is kept until then, so a crash or `kill -9` never leaves half a stage.
`manifest.json` records, per stage: status, start/end, wall time, params hash, outputs with row counts, and the
numbers the notebook recorded with `Stage.record`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import papermill as pm
import polars as pl
from tqdm.auto import tqdm

from maritime_slm.config import OUTPUTS_DIR, PROJECT_ROOT, Params, dump_params, load_params
from maritime_slm.stage import STAGES, SUMMARY_FILE

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
KERNEL_NAME = "maritime-slm"


class StageFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


def parse_stages(spec: str | None) -> list[str]:
    """'01-03', '02', '1,3,5', 'all' or None -> notebook stems in pipeline order."""
    stems = list(STAGES)
    if spec is None or spec.strip().lower() in {"", "all"}:
        return stems
    by_number = {int(stem[:2]): stem for stem in stems}
    chosen: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                numbers = range(lo, hi + 1)
            else:
                numbers = [int(part)]
        except ValueError:
            raise ValueError(f"--stages '{spec}': expected numbers like 01-03 or 1,3") from None
        for n in numbers:
            if n not in by_number:
                raise ValueError(f"--stages '{spec}': no stage {n:02d} (stages: 01-{len(stems):02d})")
            chosen.add(n)
    return [by_number[n] for n in sorted(chosen)]


def ensure_kernel() -> str:
    """Register this interpreter as a Jupyter kernel inside the venv (never a manual step)."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec(KERNEL_NAME)
        if spec.argv and Path(spec.argv[0]).resolve() == Path(sys.executable).resolve():
            return KERNEL_NAME
    except NoSuchKernel:
        pass
    from ipykernel.kernelspec import install

    install(kernel_name=KERNEL_NAME, display_name="Python (maritime-slm)", prefix=sys.prefix)
    return KERNEL_NAME


def count_rows(path: Path) -> int | None:
    """Rows in a data file or a folder of Parquet parts; None for files that aren't tables."""
    if path.is_dir():
        parts = sorted(path.rglob("*.parquet"))
        return sum(count_rows(p) or 0 for p in parts) if parts else None
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pl.scan_parquet(path).select(pl.len()).collect().item()
    if suffix == ".jsonl":
        with path.open("rb") as fh:
            return sum(1 for line in fh if line.strip())
    if suffix == ".csv":
        return pl.scan_csv(path, infer_schema=False).select(pl.len()).collect().item()
    return None


def describe_outputs(stage_dir: Path) -> dict[str, dict[str, Any]]:
    outputs: dict[str, dict[str, Any]] = {}
    for entry in sorted(stage_dir.iterdir()):
        if entry.name.startswith((".", "_")):
            continue
        files = [entry] if entry.is_file() else [p for p in entry.rglob("*") if p.is_file()]
        info: dict[str, Any] = {"bytes": sum(p.stat().st_size for p in files)}
        if entry.is_dir():
            info["files"] = len(files)
        rows = count_rows(entry)
        if rows is not None:
            info["rows"] = rows
        outputs[entry.name] = info
    return outputs


def params_sha(params: Params) -> str:
    return hashlib.sha256(dump_params(params).encode()).hexdigest()[:12]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str))
    os.replace(tmp, path)


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_manifest(run_dir: Path) -> dict[str, Any]:
    """The run's manifest; a stage left 'running' by a runner that no longer exists (SIGKILL, power loss) is
    reported as 'killed' rather than pretending to still run."""
    path = run_dir / "manifest.json"
    manifest = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    for entry in manifest["stages"].values():
        if entry.get("status") == "running" and not _alive(entry.get("pid")):
            entry["status"] = "killed"
    return manifest


def recover_stage_dir(run_dir: Path, stage: str) -> None:
    """Clear what an earlier crash left: temp folders, and put back an old version a crash left aside."""
    final = run_dir / stage
    for leftover in sorted(run_dir.glob(f".{stage}.old-*")):
        if not final.exists():
            leftover.rename(final)
        else:
            shutil.rmtree(leftover)
    for leftover in run_dir.glob(f".{stage}.tmp-*"):
        shutil.rmtree(leftover)


def commit_stage_dir(tmp: Path, final: Path) -> None:
    """Swap the finished temp folder into place; the old version is removed only after the swap."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def publish_paper_artifacts(stage_dir: Path, run_dir: Path) -> list[str]:
    src = stage_dir / "paper"
    if not src.is_dir():
        return []
    dest = run_dir / "paper"
    dest.mkdir(exist_ok=True)
    names = []
    for f in sorted(src.iterdir()):
        if f.is_file():
            shutil.copy2(f, dest / f.name)
            names.append(f.name)
    return names


def run_stage(
    stem: str,
    run_name: str,
    profile: str,
    run_dir: Path,
    params: Params,
    notebooks_dir: Path,
    manifest: dict[str, Any],
) -> dict[str, Any]:
    stage = STAGES[stem]
    source = notebooks_dir / f"{stem}.ipynb"
    executed = run_dir / "notebooks" / f"{stem}.ipynb"
    executed.parent.mkdir(parents=True, exist_ok=True)
    recover_stage_dir(run_dir, stage)
    tmp = run_dir / f".{stage}.tmp-{os.getpid()}"
    tmp.mkdir()
    entry: dict[str, Any] = {
        "notebook": f"notebooks/{stem}.ipynb",
        "status": "running",
        "pid": os.getpid(),
        "start": _now(),
        "params_sha": params_sha(params),
    }
    manifest["stages"][stage] = entry
    _write_json_atomic(run_dir / "manifest.json", manifest)
    started = time.perf_counter()
    try:
        pm.execute_notebook(
            str(source),
            str(executed),
            parameters={
                "run_name": run_name,
                "profile": profile,
                "run_dir": str(run_dir),
                "stage_dir": str(tmp),
            },
            kernel_name=ensure_kernel(),
            cwd=str(notebooks_dir),
            progress_bar={"desc": f"  {stem} cells", "leave": False},
        )
    except pm.PapermillExecutionError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        entry.update(
            status="failed",
            end=_now(),
            wall_s=round(time.perf_counter() - started, 2),
            error={
                "cell": exc.exec_count,
                "cell_index": exc.cell_index,
                "ename": exc.ename,
                "evalue": exc.evalue,
            },
        )
        _write_json_atomic(run_dir / "manifest.json", manifest)
        last_line = (exc.source or "").strip().splitlines()[-1:] or [""]
        raise StageFailed(
            f"stage {stem} failed in notebooks/{stem}.ipynb, cell [{exc.exec_count}] "
            f"(index {exc.cell_index} of the executed copy, ending `{last_line[0][:80]}`): "
            f"{exc.ename}: {exc.evalue}\n  executed copy (shows where): {executed}"
        ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        entry.update(status="interrupted", end=_now(), wall_s=round(time.perf_counter() - started, 2))
        _write_json_atomic(run_dir / "manifest.json", manifest)
        raise
    summary_path = tmp / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    entry.update(outputs=describe_outputs(tmp), summary=summary)
    commit_stage_dir(tmp, run_dir / stage)
    entry.update(
        status="done" if summary.get("implemented", True) else "placeholder",
        end=_now(),
        wall_s=round(time.perf_counter() - started, 2),
        paper=publish_paper_artifacts(run_dir / stage, run_dir),
    )
    _write_json_atomic(run_dir / "manifest.json", manifest)
    return entry


def run(
    profile: str = "default",
    stages: str | None = None,
    run_name: str | None = None,
    overrides: list[str] | None = None,
    outputs_dir: Path = OUTPUTS_DIR,
    notebooks_dir: Path = NOTEBOOKS_DIR,
) -> dict[str, Any]:
    """Validate everything first, then execute the chosen notebooks in order; stop at the first failure."""
    params = load_params(profile, overrides)
    stems = parse_stages(stages)
    missing = [s for s in stems if not (notebooks_dir / f"{s}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"notebooks not found in {notebooks_dir}: {', '.join(missing)}")
    run_name = run_name or params.profile
    run_dir = Path(outputs_dir) / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "params.yaml").write_text(dump_params(params))
    manifest = load_manifest(run_dir)
    manifest.update(run_name=run_name, profile=profile, overrides=overrides or [], updated=_now())
    bar = tqdm(stems, desc=f"run {run_name}", unit="stage")
    for stem in bar:
        bar.set_postfix_str(stem)
        run_stage(stem, run_name, profile, run_dir, params, notebooks_dir, manifest)
    return manifest
