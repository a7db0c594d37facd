"""Scale benchmark: stage 01 (ingest) and stage 02's data work over simulated days, 1 and 2 local workers and Ray.

The job, for every configuration: ingest `--days` daily CSV files (simulated U.S. AIS at `--rows-per-day`, the
MarineCadastre daily volume being ~8.5 M) with the project's engine, then stage 02's data work on the result
(day partitions: candidate windows, encounter snapshots, the vessel-bucket shuffle; bucket partitions: tracks
and per-vessel events; day partitions again: the chosen contexts' reports). Each worker is held to one thread.

Each configuration runs in its own child process, one after another; the child times each step, sums the
partitions' own seconds, and reads every worker's peak RSS. Reported: rows/s, speed-up and parallel efficiency
against one worker, peak RSS per worker and of the driver, and a projection to a year of U.S. AIS (3.2 B rows)
on one 16-core machine and on a 4-node cluster, with its assumptions printed beside it. Results go to stdout and
to `benchmarks/results/scale-<timestamp>.{csv,md,json}`.

    .venv/bin/python benchmarks/scale.py [--days 8] [--rows-per-day 8.5e6] [--configs local1,local2,ray2]

The `-float` configurations (`local1-float`, `local2-float`) are the same pool with `engine.pin_cores: false`:
the peer that shows what pinning each worker to a core of its own does.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
YEAR_ROWS = 3_200_000_000
# name: (engine, workers, engine.pin_cores). One worker is pinned: the per-core rate that a projection multiplies
# by 16 must be one core's, not one core's plus what its helper threads take of an idle second core (a 16-core
# machine running 16 workers has none). The -float peers (pinning off) only when asked for.
CONFIGS = {
    "local1": ("local", 1, True),
    "local2": ("local", 2, "auto"),
    "ray2": ("ray", 2, "auto"),
    "local1-float": ("local", 1, False),
    "local2-float": ("local", 2, False),
}
DEFAULT_CONFIGS = ("local1", "local2", "ray2")
STEPS = ("ingest", "vessels", "stage02")
CORES, NODES = 16, 4


# ------------------------------------------------------------------ the child: one configuration, timed
def warm(_: int) -> int:
    """Start-up, outside the timings: import the stage modules in a worker (and hold it briefly, so that every
    worker of the pool takes one)."""
    import maritime_slm.facts.partitions  # noqa: F401
    import maritime_slm.ingest.files  # noqa: F401

    time.sleep(0.5)
    return os.getpid()


def worker(config: str, days_dir: Path, out: Path) -> None:
    from maritime_slm.config import EngineParams, load_params
    from maritime_slm.engine import Engine, peak_rss_mb
    from maritime_slm.facts.partitions import stage_data
    from maritime_slm.ingest.files import ingest_files

    kind, workers, pin_cores = CONFIGS[config]
    params = load_params("default")
    params.engine = EngineParams(kind=kind, workers=workers, pin_cores=pin_cores)
    files = sorted(days_dir.glob("AIS_*.csv"))
    shutil.rmtree(out, ignore_errors=True)
    result: dict = {"config": config, "kind": kind, "workers": workers, "files": len(files)}
    with Engine(params.engine, progress=False) as engine:
        result["pinned"] = engine.pins_cores
        started = time.perf_counter()
        engine.map(warm, list(range(max(2, workers))), desc="start")  # 2+ items: never inline
        result["start_seconds"] = time.perf_counter() - started
        cpu = time.process_time()
        summary = ingest_files(files, out / "ingest", progress=False, engine=engine)
        result["ingest"] = {"rows": summary["rows_in"], "seconds": summary["seconds_rows"]}
        result["vessels"] = {"rows": summary["rows_clean"], "seconds": summary["seconds_vessels"]}
        started = time.perf_counter()
        data = stage_data(out / "ingest", params, out / "work", engine)
        result["stage02"] = {"rows": data["rows"], "seconds": time.perf_counter() - started}
        result["driver_cpu_seconds"] = time.process_time() - cpu
        timings = [t for t in engine.timings if t["step"] != "start"]
    step_of = {
        "ingest": "ingest",
        "days": "stage02",
        "vessel buckets": "stage02",
        "context points": "stage02",
    }
    for step in ("ingest", "stage02"):
        rows = [t for t in timings if step_of[t["step"]] == step]
        result[step]["partition_seconds"] = sum(t["seconds"] for t in rows)
        result[step]["partition_cpu_seconds"] = sum(t["cpu_seconds"] for t in rows)
        result[step]["partitions"] = len(rows)
    peaks: dict[str, float] = {}
    for t in timings:
        peaks[t["worker"]] = max(peaks.get(t["worker"], 0.0), t["peak_rss_mb"])
    result["worker_peak_rss_mb"] = peaks
    result["driver_peak_rss_mb"] = peak_rss_mb()
    result["timings"] = timings
    shutil.rmtree(out, ignore_errors=True)
    print("RESULT " + json.dumps(result), flush=True)


# ------------------------------------------------------------------ the parent: data, children, table
def simulator_version() -> str:
    """A hash of the simulator's code: cached days made by another simulator are not reused."""
    src = ROOT / "src" / "maritime_slm"
    code = b"".join((src / name).read_bytes() for name in ("ais/simulate.py", "geo.py", "ais/ports.csv"))
    return hashlib.sha1(code).hexdigest()[:8]


def simulated_days(days: int, rows_per_day: int, workdir: Path, seed: int) -> tuple[Path, float]:
    """`days` daily CSV files of about `rows_per_day` rows each (cached): (their folder, seconds)."""
    folder = workdir / f"data-{days}d-{rows_per_day}-{seed}-{simulator_version()}"
    done = folder / "DONE"
    if done.exists():
        return folder / "days", 0.0
    shutil.rmtree(folder, ignore_errors=True)
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, __file__, "--simulate", str(rows_per_day), "--days", str(days), "--seed", str(seed),
         "--out", str(folder)],
        check=True, cwd=ROOT,
    )  # fmt: skip
    done.write_text("ok")
    return folder / "days", time.perf_counter() - started


def simulate_into(rows_per_day: int, days: int, seed: int, out: Path) -> None:
    from maritime_slm.ais.simulate import simulate, split_by_day, vessels_for_rows

    csv, _ = simulate(
        n_vessels=vessels_for_rows(rows_per_day, 24.0), hours=24.0 * days, start="2024-03-01T00:00:00",
        seed=seed, anomaly_rate=0.05, malformed_lines=50, out_dir=out,
    )  # fmt: skip
    split_by_day(csv, out / "days")
    csv.unlink()


def run_child(config: str, days_dir: Path, out: Path, timeout: float) -> dict:
    load = os.getloadavg()[0]
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", config, "--input", str(days_dir), "--out", str(out)],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        return {"config": config, "error": (proc.stderr or proc.stdout)[-2000:]}
    result = json.loads(lines[-1][len("RESULT ") :])
    result["load_avg_1m"] = round(load, 2)
    return result


def table_rows(results: list[dict]) -> list[dict]:
    """One row per (configuration, step), with speed-up and efficiency against one worker pinned the same way
    (local1, or local1-float for the -float peers) where it ran."""
    ran = {r["config"]: r for r in results if "error" not in r}
    rows = []
    for r in results:
        if "error" in r:
            rows.append({"config": r["config"], "step": "failed", "error": r["error"][-300:]})
            continue
        base = ran.get("local1-float" if r["config"].endswith("-float") else "local1")
        peak = max(r["worker_peak_rss_mb"].values(), default=0.0)
        for step in STEPS:
            s = r[step]
            row = {
                "round": r.get("round", 1),
                "config": r["config"],
                "workers": r["workers"],
                "pinned": r.get("pinned"),
                "step": step,
                "rows": s["rows"],
                "seconds": round(s["seconds"], 2),
                "rows_per_s": round(s["rows"] / s["seconds"]) if s["seconds"] else None,
                "partition_seconds": round(s.get("partition_seconds", 0.0), 2),
                "partitions": s.get("partitions", 0),
                "worker_peak_rss_mb": round(peak) if step != "vessels" else None,
                "driver_peak_rss_mb": round(r["driver_peak_rss_mb"]),
                "start_seconds": round(r["start_seconds"], 2),
                "load_avg_1m": r["load_avg_1m"],
            }
            if base and s["seconds"]:
                row["speed_up"] = round(base[step]["seconds"] / s["seconds"], 2)
                row["efficiency"] = round(row["speed_up"] / r["workers"], 2) if step != "vessels" else None
            rows.append(row)
    return rows


def markdown(rows: list[dict]) -> str:
    cols = ["round", "config", "pinned", "step", "rows", "seconds", "rows_per_s", "speed_up", "efficiency", "partition_seconds",
            "worker_peak_rss_mb", "driver_peak_rss_mb", "start_seconds", "load_avg_1m"]  # fmt: skip
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for row in rows:
        cells = []
        for c in cols:
            v = row.get(c)
            cells.append("-" if v is None else f"{v:,}" if isinstance(v, int) else str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def projected(results: list[dict]) -> list[dict]:
    """One round's projection to a year (3.2 B rows) on one 16-core machine and on 4 such nodes, from the
    measured per-core rate, the measured 2-worker efficiency and the measured driver (serial) time."""
    by = {r["config"]: r for r in results if "error" not in r}
    if "local1" not in by:
        return []
    one = by["local1"]
    out = []
    for label, steps in (("ingest", ("ingest", "vessels")), ("ingest + stage 02 data", STEPS)):
        rows = one["ingest"]["rows"]
        work = sum(one[s].get("partition_seconds", 0.0) for s in steps)
        serial = sum(one[s]["seconds"] for s in steps) - work  # the driver's part of one worker's wall time
        rate = rows / work  # rows per core-second, one worker held to one thread
        scale = YEAR_ROWS / rows
        for name, eff_config in (("local", "local2"), ("ray", "ray2")):
            if eff_config not in by:
                continue
            two = by[eff_config]
            parallel_wall = sum(two[s]["seconds"] for s in steps) - serial
            eff = work / (two["workers"] * parallel_wall)  # of the partitions' part alone
            node = YEAR_ROWS / (rate * CORES * eff) + serial * scale
            entry = {"label": label, "engine": name, "eff": eff, "rate": rate, "serial": serial, "scale": scale,
                     "node_min": node / 60}  # fmt: skip
            if name == "ray":
                cluster = YEAR_ROWS / (rate * CORES * NODES * eff) + serial * scale
                entry |= {"cluster_min": cluster / 60, "nodes_speed_up": node / cluster}
            out.append(entry)
    return out


def _spread(entries: list[dict], key: str, fmt: str) -> str:
    values = sorted(e[key] for e in entries)
    return f"{statistics.median(values):{fmt}} [{values[0]:{fmt}}, {values[-1]:{fmt}}]"


def projection(rounds: list[list[dict]]) -> str:
    """The projection with its arithmetic, per round; with several rounds also each figure's median and range
    (each round's configurations ran one after another, so a round's ratios are paired against drift)."""
    out = ["", "Projection to a year of U.S. AIS (3.2 B rows). Assumptions: partitions scale with rows; each "
           "worker keeps the one-worker rate times the measured efficiency; the driver's work (merging parts, "
           "the vessel table, sampling) does not get faster with more workers or nodes; I/O keeps up."]  # fmt: skip
    per_round = [projected(r) for r in rounds]
    if not any(per_round):
        return "\n(no projection: the local1 configuration did not run)\n"
    for k, entries in enumerate(per_round, 1):
        for e in entries:
            line = (
                f"- {f'round {k}: ' if len(rounds) > 1 else ''}{e['label']}, {e['engine']} efficiency {e['eff']:.2f}: "
                f"one {CORES}-core machine = 3.2e9 / ({e['rate']:,.0f} rows/s x {CORES} x {e['eff']:.2f}) + "
                f"{e['serial']:.1f} s driver x {e['scale']:,.0f} = {e['node_min']:,.1f} min"
            )
            if "cluster_min" in e:
                line += f"; {NODES} nodes = {e['cluster_min']:,.1f} min ({e['nodes_speed_up']:.2f}x one node)"
            out.append(line)
    complete = [entries for entries in per_round if len(entries) == len(per_round[0])]
    if len(complete) > 1:
        out.append(f"Median over {len(complete)} rounds [min, max]:")
        for i, first in enumerate(complete[0]):
            same = [entries[i] for entries in complete]
            line = (
                f"- {first['label']}, {first['engine']}: efficiency {_spread(same, 'eff', '.2f')}, one {CORES}-core "
                f"machine {_spread(same, 'node_min', '.1f')} min"
            )
            if "cluster_min" in first:
                line += f", {NODES} nodes {_spread(same, 'nodes_speed_up', '.2f')}x one node"
            out.append(line)
    return "\n".join(out) + "\n"


def machine_info() -> dict:
    """The ingest benchmark's machine record, plus the Ray version (None when the extra is not installed)."""
    from ingest import machine_info as base_info

    info = base_info()
    try:
        import ray

        info["ray"] = ray.__version__
    except ImportError:
        info["ray"] = None
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--days", type=int, default=8,
        help="simulated UTC days, one file each; a multiple of the workers, or the efficiency measures the idle "
        "worker at the end (7 files on 2 workers cap it at 7/8) that a year's 365 files on 16 cores barely have",
    )  # fmt: skip
    parser.add_argument("--rows-per-day", type=float, default=8.5e6, help="about this many rows per day")
    parser.add_argument("--configs", default=",".join(DEFAULT_CONFIGS), help=f"from {', '.join(CONFIGS)}")
    parser.add_argument("--workdir", default=str(RESULTS / "scale-work"), help="simulated days and outputs")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--rounds", type=int, default=1,
        help="run the configurations this many times in turn: a round's ratios are paired against the host's drift",
    )  # fmt: skip
    parser.add_argument("--timeout", type=float, default=7200.0, help="seconds per configuration")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--simulate", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args.worker, Path(args.input), Path(args.out))
        return 0
    if args.simulate:
        simulate_into(int(args.simulate), args.days, args.seed, Path(args.out))
        return 0

    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    unknown = set(configs) - set(CONFIGS)
    if unknown:
        parser.error(f"unknown configs {sorted(unknown)} (known: {', '.join(CONFIGS)})")
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    info = machine_info()
    print(f"machine: {json.dumps(info)}", flush=True)
    days_dir, sim_seconds = simulated_days(args.days, int(args.rows_per_day), workdir, args.seed)
    megabytes = sum(p.stat().st_size for p in days_dir.glob("AIS_*.csv")) / 1e6
    note = f"simulated in {sim_seconds:.1f} s" if sim_seconds else "cached"
    print(
        f"{args.days} days x ~{args.rows_per_day:,.0f} rows: {megabytes:,.0f} MB of CSV ({note})", flush=True
    )
    rounds: list[list[dict]] = []
    for k in range(1, args.rounds + 1):
        rounds.append([])
        for config in configs:
            result = run_child(config, days_dir, workdir / f"out-{config}", args.timeout)
            result["round"] = k
            rounds[-1].append(result)
            if "error" in result:
                print(f"  {k} {config:7s} FAILED: {result['error'][-500:]}", flush=True)
                continue
            print(
                f"  {k} {config:7s} ingest {result['ingest']['seconds']:7.1f} s  vessels "
                f"{result['vessels']['seconds']:6.1f} s  stage 02 {result['stage02']['seconds']:7.1f} s  (start "
                f"{result['start_seconds']:.1f} s)",
                flush=True,
            )
    info["load_avg_1m_at_end"] = round(os.getloadavg()[0], 2)
    results = [r for one_round in rounds for r in one_round]
    rows = [row for one_round in rounds for row in table_rows(one_round)]
    text = markdown(rows) + projection(rounds)
    print("\n" + text)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS.mkdir(parents=True, exist_ok=True)
    pl.DataFrame([{k: v for k, v in r.items() if k != "error"} for r in rows if "error" not in r]).write_csv(
        RESULTS / f"scale-{stamp}.csv"
    )
    (RESULTS / f"scale-{stamp}.md").write_text(f"machine: {json.dumps(info)}\n\n" + text)
    (RESULTS / f"scale-{stamp}.json").write_text(json.dumps({"machine": info, "runs": results}, indent=2))
    print(f"wrote {RESULTS}/scale-{stamp}.{{csv,md,json}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
