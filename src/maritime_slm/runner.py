"""Runs the numbered notebooks of a profile through papermill and keeps the run folder consistent.

Each stage executes into a hidden temporary folder that is renamed into place only when the notebook finished;
the previous version of the stage is kept until then, so a crash or `kill -9` never leaves half a stage.
`manifest.json` records, per stage: status, start/end, wall time, params hash, outputs with row counts, and the
numbers the stage's `StageRecord` wrote to `_stage.json`. One run at a time holds a run folder (`runguard.RunLock`);
a run whose params differ from the folder's finished stages is refused unless forced.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import papermill as pm
import polars as pl
import yaml
from tqdm.auto import tqdm

from maritime_slm.config import (
    OUTPUTS_DIR,
    PROJECT_ROOT,
    Params,
    ParamsError,
    check_run_name,
    dump_params,
    load_params,
)
from maritime_slm.runguard import Interrupted, RunLock, signals_interrupt, stop_descendants
from maritime_slm.stage import NOT_RECIPE, STAGES, SUMMARY_FILE, flat_keys, params_sha, recipe

NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
KERNEL_NAME = "maritime-slm"


class StageFailed(RuntimeError):
    """A notebook cell raised; the message names the notebook, the cell and the error."""


class ParamsMismatch(ValueError):
    """Finished stages in the run folder were made with other params; the message says which keys changed."""


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


def load_manifest(run_dir: Path, locked: bool = False) -> dict[str, Any]:
    """The run's manifest; a stage left 'running' by a runner that no longer exists (SIGKILL, power loss) is
    reported as 'killed' rather than pretending to still run. Under the run lock no other runner can be alive."""
    path = run_dir / "manifest.json"
    try:
        manifest = json.loads(path.read_text()) if path.exists() else {"stages": {}}
    except (ValueError, UnicodeDecodeError):
        raise ParamsError(f"{path}: not valid JSON; move it aside to start the run folder afresh") from None
    for entry in manifest["stages"].values():
        if entry.get("status") == "running" and (locked or not _alive(entry.get("pid"))):
            entry["status"] = "killed"
    return manifest


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:37] + "..."


def params_changes(run_dir: Path, manifest: dict[str, Any], params: Params, rerun: set[str]) -> list[str]:
    """One line per finished stage that this run leaves in place but that was made with other params."""
    sha = params_sha(params)
    new = flat_keys(recipe(params))
    folder_params = run_dir / "params.yaml"
    lines = []
    for stage, entry in manifest["stages"].items():
        if (
            stage in rerun
            or entry.get("status") not in ("done", "placeholder")
            or entry.get("params_sha") == sha
        ):
            continue
        old = entry.get("params")
        if old is None and folder_params.is_file():
            text = folder_params.read_text()
            if hashlib.sha256(text.encode()).hexdigest()[:12] == entry.get("params_sha"):
                old = yaml.safe_load(text)
        if old is None:
            lines.append(
                f"  {stage}: made with params_sha {entry.get('params_sha')} (its params were not kept)"
            )
            continue
        old = flat_keys({k: v for k, v in old.items() if k not in NOT_RECIPE})
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        if not keys:
            continue
        changes = "; ".join(f"{k}: {_short(old.get(k))} -> {_short(new.get(k))}" for k in keys[:8])
        more = f"; and {len(keys) - 8} more" if len(keys) > 8 else ""
        lines.append(f"  {stage}: {changes}{more}")
    return lines


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
        "params": params.model_dump(mode="json"),
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
        recover_stage_dir(run_dir, stage)
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
    except BaseException as exc:
        stopped = stop_descendants()
        recover_stage_dir(run_dir, stage)
        entry.update(end=_now(), wall_s=round(time.perf_counter() - started, 2), stopped=stopped)
        if isinstance(exc, Exception):
            entry.update(
                status="failed", error={"cell": None, "ename": type(exc).__name__, "evalue": str(exc)}
            )
            _write_json_atomic(run_dir / "manifest.json", manifest)
            raise StageFailed(
                f"stage {stem} failed running notebooks/{stem}.ipynb: {type(exc).__name__}: {exc}"
            ) from exc
        entry.update(
            status="interrupted", signal=exc.name if isinstance(exc, Interrupted) else type(exc).__name__
        )
        _write_json_atomic(run_dir / "manifest.json", manifest)
        if isinstance(exc, Interrupted):
            exc.stage, exc.manifest = stem, run_dir / "manifest.json"
        raise
    try:
        summary_path = tmp / SUMMARY_FILE
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
        entry.update(outputs=describe_outputs(tmp), summary=summary)
        commit_stage_dir(tmp, run_dir / stage)
        entry["paper"] = publish_paper_artifacts(run_dir / stage, run_dir)
    except Exception as exc:
        recover_stage_dir(run_dir, stage)
        entry.update(
            status="failed",
            end=_now(),
            wall_s=round(time.perf_counter() - started, 2),
            error={"cell": None, "ename": type(exc).__name__, "evalue": str(exc), "while": "committing"},
        )
        _write_json_atomic(run_dir / "manifest.json", manifest)
        raise StageFailed(
            f"stage {stem} ran but its outputs could not be committed to {run_dir / stage}: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    entry.update(
        status="done" if summary.get("implemented", True) else "placeholder",
        end=_now(),
        wall_s=round(time.perf_counter() - started, 2),
    )
    _write_json_atomic(run_dir / "manifest.json", manifest)
    return entry


@contextlib.contextmanager
def _api_emulator(params: Params) -> Iterator[None]:
    """A dry run (`emulator: true`): the strict OpenAI emulator on a loopback port for the whole run, so that every
    stage's API models are answered there (the stage kernels find it through the environment)."""
    if not params.emulator:
        yield
        return
    from maritime_slm.dryrun import emulator

    with emulator() as server:
        names = ", ".join(e.name for e in params.api_endpoints()) or "none"
        print(f"dry run: API models ({names}) answered by the strict OpenAI emulator at {server.base_url}; "
              "nothing is sent to the API", file=sys.stderr)  # fmt: skip
        yield


def run(
    profile: str = "default",
    stages: str | None = None,
    run_name: str | None = None,
    overrides: list[str] | None = None,
    outputs_dir: Path = OUTPUTS_DIR,
    notebooks_dir: Path = NOTEBOOKS_DIR,
    force: bool = False,
) -> dict[str, Any]:
    """Validate everything first, then execute the chosen notebooks in order; stop at the first failure.

    Nothing is written before the run name is checked and the run folder's lock is held.
    """
    run_name = check_run_name(run_name) if run_name is not None else None
    params = load_params(profile, overrides)
    stems = parse_stages(stages)
    missing = [s for s in stems if not (notebooks_dir / f"{s}.ipynb").is_file()]
    if missing:
        raise FileNotFoundError(f"notebooks not found in {notebooks_dir}: {', '.join(missing)}")
    run_name = run_name or check_run_name(params.profile, "profile name (the default run name)")
    outputs_dir = Path(outputs_dir)
    run_dir = outputs_dir / run_name
    outputs_dir.mkdir(parents=True, exist_ok=True)
    if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
        raise ParamsError(f"--run-name {run_name!r}: {run_dir} exists and is not a plain folder")
    run_dir.mkdir(exist_ok=True)
    with signals_interrupt(), RunLock(run_dir), _api_emulator(params):
        manifest = load_manifest(run_dir, locked=True)
        changed = params_changes(run_dir, manifest, params, {STAGES[s] for s in stems})
        if changed:
            head = f"finished stages in {run_dir} were made with other params than this run's:"
            if not force:
                raise ParamsMismatch(
                    "\n".join([head, *changed])
                    + "\n  re-run those stages too, use another --run-name, or pass --force to mix them"
                )
            print("warning (--force): " + "\n".join([head, *changed]), file=sys.stderr)
        (run_dir / "params.yaml").write_text(dump_params(params))
        manifest.update(run_name=run_name, profile=profile, overrides=overrides or [], updated=_now())
        _write_json_atomic(run_dir / "manifest.json", manifest)
        bar = tqdm(stems, desc=f"run {run_name}", unit="stage")
        for stem in bar:
            bar.set_postfix_str(stem)
            run_stage(stem, run_name, profile, run_dir, params, notebooks_dir, manifest)
    return manifest
