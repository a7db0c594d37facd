"""Vessel buckets: every vessel in one bucket of range, and buckets of even size on real-looking MMSIs."""

import numpy as np
import polars as pl
import pytest

from maritime_slm.facts.partitions import vessel_bucket


@pytest.mark.parametrize("buckets", [1, 2, 7, 8, 365])
def test_every_mmsi_gets_one_bucket_in_range(buckets):
    mmsi = pl.Series(
        "mmsi", np.random.default_rng(0).integers(100_000_000, 999_999_999, 5_000), dtype=pl.Int32
    )
    got = pl.select(vessel_bucket(pl.lit(mmsi), buckets)).to_series()
    assert got.dtype == pl.UInt32 and got.min() >= 0 and got.max() < buckets
    assert got.equals(
        pl.select(vessel_bucket(pl.lit(mmsi), buckets)).to_series()
    )  # a pure function of the MMSI


def test_mmsis_ending_in_zeros_spread_evenly():
    """Ship MMSIs often end in 000 (a MID, an assigned block): `mmsi % 8` would put every one in bucket 0."""
    mmsi = pl.Series(
        "mmsi", [mid * 1_000_000 + k * 1_000 for mid in (366, 440, 538, 636) for k in range(500)]
    )
    assert (mmsi % 8).n_unique() == 1
    counts = pl.select(vessel_bucket(pl.lit(mmsi), 8)).to_series().value_counts()["count"].to_numpy()
    assert len(counts) == 8 and counts.max() <= 1.2 * counts.mean() and counts.min() >= 0.8 * counts.mean()
