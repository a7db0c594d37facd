"""The machine's own parallel ceiling, the peer of `scale.py`'s efficiencies: the same job alone and two at once
(pure-Python compute, a numpy pass over 400 MB, a polars sort + group-by), each process held to one thread.

    .venv/bin/python benchmarks/ceiling.py
"""

import os
import time
from concurrent.futures import ProcessPoolExecutor

os.environ["OMP_NUM_THREADS"] = "1"
os.environ["POLARS_MAX_THREADS"] = "1"


def cpu(_):
    t = time.perf_counter()
    x = 0
    for i in range(30_000_000):
        x += i * i % 7
    return time.perf_counter() - t


def mem(_):
    import numpy as np

    a = np.ones(50_000_000)  # 400 MB
    t = time.perf_counter()
    for _ in range(20):
        a.sum()
        a *= 1.0000001
    return time.perf_counter() - t


def frame(_):
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(0)
    df = pl.DataFrame(
        {
            "mmsi": rng.integers(0, 20000, 6_000_000),
            "sog": rng.random(6_000_000),
            "ts": rng.integers(0, 86400, 6_000_000),
        }
    )
    t = time.perf_counter()
    for _ in range(3):
        df.sort("mmsi", "ts").group_by("mmsi").agg(pl.len(), pl.col("sog").mean(), pl.col("ts").diff().max())
    return time.perf_counter() - t


if __name__ == "__main__":
    for name, fn in (
        ("compute (pure Python loop)", cpu),
        ("memory (numpy, 400 MB array)", mem),
        ("polars sort + group-by (6 M rows)", frame),
    ):
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(fn, [0, 0]))  # warm
            t = time.perf_counter()
            one = list(pool.map(fn, [0]))[0]
            t1 = time.perf_counter() - t
            t = time.perf_counter()
            two = list(pool.map(fn, [0, 1]))
            t2 = time.perf_counter() - t
        print(
            f"{name}: alone {one:.2f} s; two at once {two[0]:.2f} / {two[1]:.2f} s -> throughput x{2 * t1 / t2:.2f} (efficiency {t1 / t2:.2f})",
            flush=True,
        )
