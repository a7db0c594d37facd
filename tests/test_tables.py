"""Markdown tables: numbers a reader can trust at a glance."""

import math

import polars as pl

from maritime_slm.report.tables import to_markdown


def test_markdown_numbers():
    df = pl.DataFrame(
        {
            "name": ["a|b", "c"],
            "p_value": [1.2e-10, 0.0],
            "usd": [2_190_000.0, 0.877],
            "n": [1234, None],
            "r": [math.nan, 0.5],
        }
    )
    rows = to_markdown(df).splitlines()
    assert rows[0] == "| name | p_value | usd | n | r |"
    assert rows[2] == "| a\\|b | 1.2e-10 | 2,190,000 | 1,234 | nan |"
    assert rows[3] == "| c | 0 | 0.877 |  | 0.5 |"
