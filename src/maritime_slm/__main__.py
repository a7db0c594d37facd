"""Command line: `python -m maritime_slm run --profile default [--stages 01-03] [--run-name X] [--set k=v ...]`;
`python -m maritime_slm serve --run X [--model tuned|base] [--quant f16|q8_0|q4_k_m] [--port N]`,
`python -m maritime_slm bench --run X --base-url URL --model NAME [--api-key-env VAR]`,
`python -m maritime_slm cost-preview --profile paper [--contexts-sample N]` (what a year of AIS will cost).

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
        help="override a param by dotted key; the value is parsed as YAML (e.g. finetune.max_steps=10)",
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


SERVED_FILES = {"tuned": "student", "base": "base"}


def cmd_serve(args: argparse.Namespace) -> int:
    """The run's exported student GGUF behind llama.cpp's OpenAI-compatible server, until Ctrl-C or SIGTERM."""
    import signal
    import time

    from maritime_slm.config import check_run_name
    from maritime_slm.llm.server import LocalServerError, local_server
    from maritime_slm.runner import OUTPUTS_DIR

    try:
        run = check_run_name(args.run, "--run")
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outputs_dir = Path(args.outputs_dir) if args.outputs_dir else OUTPUTS_DIR
    gguf = (
        outputs_dir
        / run
        / "finetune"
        / "export"
        / "gguf"
        / f"{SERVED_FILES[args.model]}.{args.quant.upper()}.gguf"
    )
    if not gguf.is_file():
        print(
            f"error: {gguf} not found: run the finetune stage of {run!r} first; if it ran, the 'exports' "
            f"entry of {outputs_dir / run / 'manifest.json'} says why the GGUF export failed",
            file=sys.stderr,
        )
        return 2
    model = f"{run}-{args.model}-{args.quant}"

    def stop(signum, _frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        with local_server(
            gguf, model_alias=model, host=args.host, port=args.port, n_ctx=args.n_ctx
        ) as base_url:
            print(f"base_url: {base_url}\nmodel: {model}\ngguf: {gguf}\nCtrl-C stops the server", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("server stopped", file=sys.stderr)
        return 0
    except (LocalServerError, OSError) as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1


def cmd_bench(args: argparse.Namespace) -> int:
    """Any OpenAI-compatible model on a run's grounded test split, beside the run's own models."""
    from pydantic import ValidationError

    from maritime_slm.config import ModelEndpoint, check_run_name
    from maritime_slm.evaluate.bench import BenchError, bench
    from maritime_slm.llm.failures import ModelCallsFailed
    from maritime_slm.llm.secrets import MissingAPIKey
    from maritime_slm.runner import OUTPUTS_DIR

    try:
        run = check_run_name(args.run, "--run")
        endpoint = ModelEndpoint(
            name=args.name or args.model, model=args.model, base_url=args.base_url, api_key_env=args.api_key_env,
            response_format="text", temperature=0.0, concurrency=args.concurrency, timeout_s=args.timeout_s,
        )  # fmt: skip
    except (ParamsError, ValidationError) as exc:
        first = exc.errors()[0] if isinstance(exc, ValidationError) else None
        why = f"{'.'.join(map(str, first['loc']))}: {first['msg']}" if first else str(exc)
        print(f"error: {why}", file=sys.stderr)
        return 2
    run_dir = (Path(args.outputs_dir) if args.outputs_dir else OUTPUTS_DIR) / run
    try:
        res = bench(run_dir, endpoint, max_items=args.max_items, budget_usd=args.budget_usd)
    except (BenchError, ParamsError, MissingAPIKey) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ModelCallsFailed as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1
    print(res["summary"])
    print(res["accuracy"].select("model", "n_scored", "correct", "accuracy", "ci_low", "ci_high"))
    if len(res["mcnemar"]):
        print(res["mcnemar"])
    print(f"tables: {res['out_dir']}")
    return 0


def cmd_cost_preview(args: argparse.Namespace) -> int:
    """The model calls a profile makes on a year of AIS (`contexts.n_contexts`), priced before anything runs."""
    from maritime_slm.cost.year import SAMPLE_INPUT, run_year_preview

    try:
        params = load_params(args.profile, [f"ingest.inputs=['{SAMPLE_INPUT}']", *_overrides(args.overrides)])
        previews = run_year_preview(params, args.contexts_sample)
    except (ParamsError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"profile {params.profile}: {params.contexts.n_contexts:,} contexts, counted on "
          f"{args.contexts_sample} contexts at most from {SAMPLE_INPUT}\n")  # fmt: skip
    for preview in previews:
        print(preview.table(), end="\n\n")
    total = sum(p.total("usd_ceiling") for p in previews)
    batch = sum(p.total("usd_ceiling_batch") for p in previews)
    expected = sum(p.total("usd_expected") for p in previews)
    print(f"all stages: ceiling ${total:,.2f} sync, ${batch:,.2f} batch; expected ${expected:,.2f} sync")
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
    p_serve = sub.add_parser(
        "serve", help="serve a run's exported student (GGUF) on an OpenAI-compatible server"
    )
    p_serve.add_argument("--run", required=True, help="the run folder outputs/<run>/ (its finetune stage)")
    p_serve.add_argument("--model", choices=sorted(SERVED_FILES), default="tuned", help="default: tuned")
    p_serve.add_argument("--quant", choices=["f16", "q8_0", "q4_k_m"], default="q8_0", help="default: q8_0")
    p_serve.add_argument("--port", type=int, default=None, help="default: a free port")
    p_serve.add_argument("--host", default="127.0.0.1")
    p_serve.add_argument("--n-ctx", type=int, default=4096, help="context length (default: 4096)")
    p_serve.add_argument("--outputs-dir", default=None, help=argparse.SUPPRESS)
    p_serve.set_defaults(func=cmd_serve)
    p_bench = sub.add_parser(
        "bench", help="score any OpenAI-compatible model on a run's test split, beside the run's models"
    )
    p_bench.add_argument("--run", required=True, help="the run folder outputs/<run>/ (after 05_evaluate)")
    p_bench.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8080/v1")
    p_bench.add_argument("--model", required=True, help="the model name the server expects")
    p_bench.add_argument("--name", default=None, help="label in the tables (default: --model)")
    p_bench.add_argument(
        "--api-key-env", default=None, help="NAME of the env var with the key (never the key)"
    )
    p_bench.add_argument("--max-items", type=int, default=None, help="default: the run's evaluate.max_items")
    p_bench.add_argument("--concurrency", type=int, default=1, help="requests in flight (default: 1)")
    p_bench.add_argument("--timeout-s", type=float, default=120.0)
    p_bench.add_argument("--budget-usd", type=float, default=0.0, help="USD cap (default 0: pay nothing)")
    p_bench.add_argument("--outputs-dir", default=None, help=argparse.SUPPRESS)
    p_bench.set_defaults(func=cmd_bench)
    p_cost = sub.add_parser(
        "cost-preview",
        help="what a profile's model calls cost on a year of AIS, counted on the shipped sample",
    )
    _add_params_args(p_cost)
    p_cost.add_argument(
        "--contexts-sample", type=int, default=40, help="sample contexts to count on (default: 40)"
    )
    p_cost.set_defaults(func=cmd_cost_preview)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
