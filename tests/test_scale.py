"""Stages 01 and 02 give the same outputs under every engine, and stage 02's partitions give the all-points results.

Engines: ingesting the files one after another in this process (what ingest did before it had partitions), a
local pool with 1 and with 2 workers, and Ray (a local Ray with 2 CPUs). Input: three simulated UTC days, one
file each, in which some vessels fall silent across the first midnight, with 7-minute context windows (they
do not divide a day, so windows cross midnight as well). Equality is byte-for-byte for every data file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from maritime_slm.ais.simulate import simulate, split_by_day
from maritime_slm.config import EngineParams, IngestParams, load_params
from maritime_slm.facts.build import build_contexts_and_facts, read_flags, read_points
from maritime_slm.facts.contexts import sample_contexts
from maritime_slm.facts.events import detect_events
from maritime_slm.facts.partitions import EVENT_ORDER, read_events
from maritime_slm.facts.tracks import build_tracks
from maritime_slm.ingest.files import ingest_files, run_ingest
from maritime_slm.models import count_tokens

pytestmark = pytest.mark.slow

MIDNIGHT = datetime(2024, 6, 2, tzinfo=UTC)
SILENT = 6  # vessels silenced from 23:48 to 00:14 across the first midnight
DATA_FILES = ("points", "quarantine.parquet", "quality.csv", "vessels.parquet")
STAGE2_FILES = ("contexts.jsonl", "facts.jsonl", "candidates.parquet", "strata.csv", "events")


@pytest.fixture(scope="module")
def day_files(tmp_path_factory) -> list[Path]:
    out = tmp_path_factory.mktemp("days")
    csv, _ = simulate(
        n_vessels=30, hours=28, start="2024-06-01T22:00:00", seed=11, anomaly_rate=0.1, malformed_lines=6,
        out_dir=out,
    )  # fmt: skip
    lines = csv.read_text().split("\n")
    silent = sorted({line.split(",", 1)[0] for line in lines[1:] if line[:9].isdigit()})[:SILENT]

    def kept(line: str) -> bool:
        fields = line.split(",")
        return not (
            len(fields) > 1 and fields[0] in silent and "2024-06-01T23:48" <= fields[1] < "2024-06-02T00:14"
        )

    csv.write_text("\n".join(line for line in lines if kept(line)))
    return split_by_day(csv, out / "split")


@pytest.fixture(scope="module")
def params(day_files):
    p = load_params("smoke")
    p.ingest = IngestParams(inputs=[str(f) for f in day_files])
    p.contexts = p.contexts.model_copy(
        update={
            "window_minutes": 7.0,
            "cell_deg": 1.0,
            "min_vessels": 2,
            "n_contexts": 8,
            "vessels_per_context": 4,
        }
    )
    return p


def run_stages(params, folder: Path, engine: EngineParams) -> Path:
    params = params.model_copy(update={"engine": engine})
    run_ingest(params, folder / "ingest", progress=False, paper=False)
    build_contexts_and_facts(folder / "ingest", params, folder / "generate", progress=False)
    return folder


def tree(folder: Path, names: tuple[str, ...]) -> dict[str, bytes]:
    files = {}
    for name in names:
        target = folder / name
        for path in sorted(target.rglob("*")) if target.is_dir() else [target]:
            if path.is_file():
                files[str(path.relative_to(folder))] = path.read_bytes()
    return files


@pytest.fixture(scope="module")
def runs(params, day_files, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    ingest_files(day_files, base / "serial", progress=False)
    return {
        "serial": base / "serial",
        "local1": run_stages(params, base / "local1", EngineParams(kind="local", workers=1)),
        "local2": run_stages(params, base / "local2", EngineParams(kind="local", workers=2)),
    }


def assert_same_outputs(a: Path, b: Path) -> None:
    for sub, names in (("ingest", DATA_FILES), ("generate", STAGE2_FILES)):
        left, right = tree(a / sub, names), tree(b / sub, names)
        assert sorted(left) == sorted(right)
        differ = [name for name in left if left[name] != right[name]]
        assert differ == [], f"{sub}: {differ} differ between {a.name} and {b.name}"


def test_ingest_in_partitions_is_byte_identical_to_one_file_after_another(runs, day_files):
    serial = tree(runs["serial"], DATA_FILES)
    assert len(day_files) == 3 and sum(name.startswith("points/date=") for name in serial) == 3
    for name in ("local1", "local2"):
        assert tree(runs[name] / "ingest", DATA_FILES) == serial, name
    summary = json.loads((runs["local2"] / "ingest" / "ingest_summary.json").read_text())
    assert summary["engine"] == {"kind": "local", "workers": 2}
    assert summary["rows_in"] == summary["rows_clean"] + summary["rows_quarantined"]
    assert sorted(p["partition"] for p in summary["partitions"]) == [f.name for f in day_files]


def test_one_and_two_local_workers_give_identical_outputs(runs):
    assert_same_outputs(runs["local1"], runs["local2"])


def test_partitions_give_the_single_process_events_and_contexts(runs, params):
    ingest_dir, generate = runs["local2"] / "ingest", runs["local2"] / "generate"
    points = read_points(ingest_dir)
    expected = detect_events(build_tracks(points.collect(), params.facts.gap_minutes), params.facts)
    for kind, table in expected.items():
        got = read_events(generate / "events", kind)
        assert_frame_equal(got, table.sort(EVENT_ORDER[kind], maintain_order=True), check_exact=True)
    gaps = expected["gaps"]
    across = gaps.filter((pl.col("start") < MIDNIGHT) & (pl.col("end") > MIDNIGHT))
    assert across.height >= SILENT // 2, "the input has no reporting gap across midnight to test"
    assert expected["encounters"].height > 0 and expected["loitering"].height > 0

    contexts, cells, strata = sample_contexts(
        points, read_flags(ingest_dir), params.contexts, params.facts, count_tokens, progress=False
    )
    assert_frame_equal(pl.read_parquet(generate / "candidates.parquet"), cells, check_exact=True)
    window = pl.duration(minutes=7)
    crossing = cells.filter((pl.col("window") < MIDNIGHT) & (pl.col("window") + window > MIDNIGHT))
    assert crossing.height > 0, "no candidate window crosses midnight"
    written = [json.loads(line) for line in (generate / "contexts.jsonl").read_text().splitlines()]
    assert len(written) == len(contexts) > 0
    assert written == [json.loads(json.dumps(c, default=str)) for c in contexts]
    assert_frame_equal(pl.read_csv(generate / "strata.csv"), strata, check_dtypes=False)


def test_ray_gives_identical_outputs(runs, params, tmp_path):
    pytest.importorskip("ray", reason="ray is not installed (the optional extra: pip install -e '.[ray]')")
    ray_run = run_stages(params, tmp_path / "ray2", EngineParams(kind="ray", workers=2))
    assert_same_outputs(runs["local2"], ray_run)
    summary = json.loads((ray_run / "ingest" / "ingest_summary.json").read_text())
    assert summary["engine"]["kind"] == "ray" and summary["engine"]["address"] == "local"


def test_a_pairs_encounter_across_midnight_is_one_episode_in_its_bucket(tmp_path):
    """Each day deals its hits into buckets by the pair's first vessel; the bucket joins the pair's snapshots of
    both days into the one episode the single-process join finds."""
    from datetime import timedelta

    from maritime_slm.facts.events import SNAPSHOT_MINUTES, encounter_episodes
    from maritime_slm.facts.partitions import _bucket_rows, _write_buckets

    snaps = [MIDNIGHT + timedelta(minutes=SNAPSHOT_MINUTES * k) for k in range(-3, 3)]
    rows = [
        {"mmsi_1": first, "mmsi_2": first + 7, "snap": t, "distance_nm": 1.0, "cpa_nm": 0.2 + 0.01 * k,
         "tcpa_min": 10.0, "encounter": "crossing", "give_way": "first",
         **{f"{f}_{i}": float(i) for i in (1, 2) for f in ("lat", "lon", "sog", "cog")}}
        for first in (366000001, 366000002, 366000003) for k, t in enumerate(snaps)
    ]  # fmt: skip
    hits = pl.DataFrame(rows).with_columns(pl.col("snap").dt.cast_time_unit("us"))
    days = [hits.filter(pl.col("snap") < MIDNIGHT), hits.filter(pl.col("snap") >= MIDNIGHT)]
    paths = tuple(tmp_path / f"day{i}.arrow" for i in range(2))
    for day, path in zip(days, paths, strict=True):
        _write_buckets(day, "mmsi_1", path, 2)
    per_bucket = [encounter_episodes(_bucket_rows(paths, b)) for b in range(2)]
    joined = pl.concat(per_bucket).sort(EVENT_ORDER["encounters"], maintain_order=True)
    assert_frame_equal(joined, encounter_episodes(hits), check_exact=True)
    assert joined.height == 3 and (joined["start"] < MIDNIGHT).all() and (joined["end"] >= MIDNIGHT).all()
    assert sorted(b.height for b in per_bucket) == [1, 2]
