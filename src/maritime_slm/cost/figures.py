"""table_7 (annual cost, one-time cost, reduction factor; paper reported beside this run) and figure_6."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import polars as pl  # noqa: E402

from maritime_slm.cost.model import ScenarioInputs, annual_costs, cumulative_costs  # noqa: E402

PAPER_REPORTED = {
    "API inference, USD/year": 2_190_000.0,
    "SLM inference, USD/year": 8_400.0,
    "reduction factor (x)": 261.0,
}


def table_7(scenarios: list[ScenarioInputs]) -> pl.DataFrame:
    results = {s.name: annual_costs(s) for s in scenarios}
    rows = {  # row label -> (result key, decimals shown: whole dollars, 0.1x, cents, ~1 min in days)
        "API inference, USD/year": ("api_usd_per_year", 0),
        "SLM inference, USD/year": ("slm_usd_per_year", 0),
        "reduction factor (x)": ("reduction_factor", 1),
        "SLM instances": ("instances", 0),
        "one-time cost, USD": ("one_time_usd", 2),
        "break-even, days": ("break_even_days", 4),
    }
    data: dict[str, list] = {"quantity": list(rows), "paper_reported": [PAPER_REPORTED.get(r) for r in rows]}
    for s in scenarios:
        data[s.name] = [round(float(results[s.name][key]), nd) for key, nd in rows.values()]
    return pl.DataFrame(data)


def _duration(days: float) -> str:
    if days < 1 / 24:
        return f"{days * 1440:.0f} min"
    if days < 2:
        return f"{days * 24:.1f} h"
    return f"{days:.0f} days"


def figure_6(scenarios: list[ScenarioInputs], horizon_days: int, path: Path) -> Path:
    """Cumulative cost vs days on a log scale, API vs SLM per scenario, break-even marked."""
    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=150)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, s in enumerate(scenarios):
        color = colors[i % len(colors)]
        curve = cumulative_costs(s, horizon_days)
        ax.plot(curve["day"], curve["api_usd"], color=color, lw=2, label=f"{s.name}: API ({s.api_model})")
        ax.plot(curve["day"], curve["slm_usd"], color=color, lw=2, ls="--",
                label=f"{s.name}: SLM ({s.serving_label})")  # fmt: skip
        be = annual_costs(s)["break_even_days"]
        if math.isfinite(be) and curve["day"].min() <= be <= horizon_days:
            y = annual_costs(s)["api_usd_per_day"] * be
            ax.scatter([be], [y], color=color, zorder=5, s=30)
            ax.annotate(f"break-even after {_duration(be)}", (be, y), textcoords="offset points", xytext=(8, -14),
                        fontsize=8, color=color)  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("days of operation (log scale)")
    ax.set_ylabel("cumulative cost (USD, log scale)")
    ax.set_title("Cumulative inference cost: API model vs fine-tuned SLM")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
