"""Command line: `python -m maritime_slm run --profile default [--stages 01-03] [--run-name X] [--set k=v ...]`.

Exit status: 0 done, 1 a stage failed, 2 bad input (params, run name, a busy or mismatched run folder),
130 / 143 stopped by Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from maritime_slm.config import ParamsError, dump_params, load_params


def _overrides(groups: list[list[str]] | None) -> list[str]:
    return [item for group in groups or [] for item in group]


def _add_params_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="default", help="params/<profile>.yaml, or a path to a YAML file")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        nargs="+",
        metavar="KEY=VALUE",
        help="override a param by dotted key; the value is parsed as YAML (e.g. train.max_steps=10)",
    )


def cmd_run(args: argparse.Namespace) -> int:
    from maritime_slm.runguard import Interrupted
    from maritime_slm.runner import NOTEBOOKS_DIR, OUTPUTS_DIR, StageFailed, run

    outputs_dir = Path(args.outputs_dir) if args.outputs_dir else OUTPUTS_DIR
    try:
        manifest = run(
            profile=args.profile,
            stages=args.stages,
            run_name=args.run_name,
            overrides=_overrides(args.overrides),
            outputs_dir=outputs_dir,
            notebooks_dir=Path(args.notebooks_dir) if args.notebooks_dir else NOTEBOOKS_DIR,
            force=args.force,
        )
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except StageFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Interrupted as exc:
        where = (
            f"stage {exc.stage} stopped (its kernel and any server it started too) and marked 'interrupted' "
            f"in {exc.manifest}; the stage folders of earlier runs are kept"
            if exc.stage
            else "no stage was running"
        )
        print(f"\ninterrupted by {exc.name}: {where}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("\ninterrupted before the run started: nothing was written", file=sys.stderr)
        return 130
    except OSError as exc:
        print(f"error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    for stage, entry in manifest["stages"].items():
        print(f"{stage:9s} {entry['status']:8s} {entry.get('wall_s') or 0:8.1f} s")
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    try:
        print(dump_params(load_params(args.profile, _overrides(args.overrides))), end="")
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


REQUIRED_IMPORTS = [
    "unsloth",  # first: it patches transformers/trl/peft when imported before them
    "polars",
    "pyarrow",
    "papermill",
    "openai",
    "statsmodels",
    "matplotlib",
    "seaborn",
    "sacrebleu",
    "rouge_score",
    "transformers",
    "trl",
    "peft",
    "datasets",
    "llama_cpp",
]


def cmd_doctor(_: argparse.Namespace) -> int:
    """Check the install: imports, the Jupyter kernel, the local GGUF; register the kernel if missing."""
    from maritime_slm.runner import ensure_kernel

    failed = []
    for name in REQUIRED_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception as exc:
            failed.append(f"{name}: {type(exc).__name__}: {exc}")
    print(f"kernel: {ensure_kernel()}")
    if failed:
        print("missing or broken:\n  " + "\n  ".join(failed), file=sys.stderr)
        return 1
    print(f"imports ok: {', '.join(REQUIRED_IMPORTS)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m maritime_slm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the notebooks of a profile through papermill")
    _add_params_args(p_run)
    p_run.add_argument("--stages", default=None, help="e.g. 01-03, 02, 1,3 (default: all)")
    p_run.add_argument("--run-name", default=None, help="outputs/<run-name>/ (default: the profile name)")
    p_run.add_argument(
        "--force", action="store_true", help="run even if finished stages in the folder used other params"
    )
    p_run.add_argument("--outputs-dir", default=None, help=argparse.SUPPRESS)
    p_run.add_argument("--notebooks-dir", default=None, help=argparse.SUPPRESS)
    p_run.set_defaults(func=cmd_run)
    p_params = sub.add_parser("params", help="print the resolved params of a profile")
    _add_params_args(p_params)
    p_params.set_defaults(func=cmd_params)
    sub.add_parser("doctor", help="check the install and register the Jupyter kernel").set_defaults(
        func=cmd_doctor
    )
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
