"""The finetune stage's artifacts: `train_log.csv`, figure 4 (loss curves) and table 4 (configuration and cost)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl

LOG_COLUMNS = {
    "step": pl.Int64,
    "epoch": pl.Float64,
    "loss": pl.Float64,
    "val_loss": pl.Float64,
    "lr": pl.Float64,
    "grad_norm": pl.Float64,
    "num_tokens": pl.Float64,
    "tokens_per_s": pl.Float64,
    "train_s": pl.Float64,
    "wall_s": pl.Float64,
}


def _num(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def train_log(log_history: list[dict[str, Any]]) -> pl.DataFrame:
    """One row per logged step: training loss, validation loss (where evaluated), lr and training throughput.

    `tokens_per_s` is non-padding tokens per second of optimizer-step time since the previous training log
    (evaluation and checkpointing excluded).
    """
    rows: dict[int, dict[str, Any]] = {}
    for entry in log_history:
        if "step" not in entry or "train_runtime" in entry:
            continue
        row = rows.setdefault(int(entry["step"]), {"step": int(entry["step"])})
        if "loss" in entry:
            row["loss"] = _num(entry["loss"])
            row["lr"] = _num(entry.get("learning_rate"))
            row["grad_norm"] = _num(entry.get("grad_norm"))
            row["num_tokens"] = _num(entry.get("num_tokens"))
            row["train_s"] = _num(entry.get("train_s"))
        if "eval_loss" in entry:
            row["val_loss"] = _num(entry["eval_loss"])
        if "epoch" in entry:
            row["epoch"] = _num(entry["epoch"])
        if entry.get("wall_s") is not None:
            row["wall_s"] = _num(entry["wall_s"])
    ordered = [rows[k] for k in sorted(rows)]
    prev_tokens, prev_time = 0.0, 0.0
    for row in ordered:
        tokens, spent = row.get("num_tokens"), row.get("train_s")
        if tokens is not None and spent is not None:
            if spent > prev_time and tokens >= prev_tokens:
                row["tokens_per_s"] = (tokens - prev_tokens) / (spent - prev_time)
            prev_tokens, prev_time = tokens, spent
    data = {name: [row.get(name) for row in ordered] for name in LOG_COLUMNS}
    return pl.DataFrame(data, schema=LOG_COLUMNS)


def _smooth(values: list[float], alpha: float) -> list[float]:
    out, level = [], None
    for v in values:
        level = v if level is None else alpha * v + (1 - alpha) * level
        out.append(level)
    return out


def figure_4(log: pl.DataFrame, path: Path, title: str, answers_only: bool = True) -> Path:
    """Training and validation loss against optimizer step, sized for a single paper column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    train = log.filter(pl.col("loss").is_not_null())
    val = log.filter(pl.col("val_loss").is_not_null())
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=200)
    if train.height:
        steps, loss = train["step"].to_list(), train["loss"].to_list()
        if train.height >= 20:
            ax.plot(steps, loss, color="tab:blue", alpha=0.3, linewidth=1.0, label="training loss (per log)")
            ax.plot(
                steps, _smooth(loss, 0.15), color="tab:blue", linewidth=2.0, label="training loss (smoothed)"
            )
        else:
            ax.plot(
                steps, loss, color="tab:blue", marker="o", markersize=4, linewidth=2.0, label="training loss"
            )
    if val.height:
        ax.plot(
            val["step"].to_list(),
            val["val_loss"].to_list(),
            color="tab:orange",
            marker="s",
            markersize=5,
            linewidth=2.0,
            label="validation loss",
        )
    ax.set_xlabel("optimizer step", fontsize=12)
    ax.set_ylabel("cross-entropy loss" + (" (answer tokens)" if answers_only else ""), fontsize=12)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(title, fontsize=12)
    ax.tick_params(labelsize=11)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=10, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.1f}"
        if abs(value) < 10 ** -(digits - 1):
            return f"{value:.{digits}g}"
        return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{digits}f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def table_4(rows: list[tuple[str, Any, Any]]) -> pl.DataFrame:
    """(item, this run, paper reported) as strings, so numbers, labels and lists share one column each."""
    return pl.DataFrame(
        {
            "item": [r[0] for r in rows],
            "this run": [fmt(r[1]) for r in rows],
            "paper reported": [fmt(r[2]) for r in rows],
        }
    )
