"""Tables as CSV (for machines) and Markdown (for the paper folder and the notebooks), written side by side."""

from __future__ import annotations

from pathlib import Path

import polars as pl


def to_markdown(df: pl.DataFrame, float_digits: int = 3) -> str:
    def cell(v) -> str:
        if v is None:
            return ""
        if isinstance(v, float):
            if v != 0 and abs(v) < 10**-float_digits:  # a p-value of 1e-10 is not "0"
                return f"{v:.2g}"
            return f"{v:,.{float_digits}f}".rstrip("0").rstrip(".") if abs(v) < 1e15 else f"{v:.3e}"
        if isinstance(v, int) and not isinstance(v, bool):
            return f"{v:,}"
        return str(v).replace("|", "\\|")

    header = "| " + " | ".join(df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.iter_rows()]
    return "\n".join([header, rule, *rows]) + "\n"


def write_table(df: pl.DataFrame, folder: Path, name: str, title: str | None = None) -> Path:
    """`folder/name.csv` and `folder/name.md` (with an optional title line); returns the Markdown path."""
    folder.mkdir(parents=True, exist_ok=True)
    df.write_csv(folder / f"{name}.csv")
    md = (f"**{title}**\n\n" if title else "") + to_markdown(df)
    path = folder / f"{name}.md"
    path.write_text(md)
    return path
