"""The cost model: every number traceable to a named, dated input.

API cost/day   = queries/day x (input tokens x input price + output tokens x output price) / 1e6
SLM cost/day   = instances x instance $/h x 24, instances = max(min, ceil(queries/s / (queries/s per instance x
                 utilisation)))
annual         = per day x days/year; reduction factor = API annual / SLM annual
break-even     = one-time cost / (API per day - SLM per day) days (never, if the SLM is not cheaper per day)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class ScenarioInputs:
    """A scenario with every input resolved (params, or measured by this run)."""

    name: str
    queries_per_day: float
    input_tokens_per_query: float
    output_tokens_per_query: float
    api_model: str
    api_price_in_per_m: float
    api_price_out_per_m: float
    serving_label: str
    serving_hour_usd: float
    serving_queries_per_s: float
    utilisation: float
    min_instances: int
    one_time_usd: dict[str, float]
    days_per_year: float = 365.0


def api_cost_per_day(queries_per_day: float, input_tokens: float, output_tokens: float, price_in_per_m: float,
                     price_out_per_m: float) -> float:  # fmt: skip
    return queries_per_day * (input_tokens * price_in_per_m + output_tokens * price_out_per_m) / 1e6


def serving_instances(queries_per_day: float, queries_per_s_per_instance: float, utilisation: float = 1.0,
                      min_instances: int = 1) -> int:  # fmt: skip
    needed = (queries_per_day / SECONDS_PER_DAY) / (queries_per_s_per_instance * utilisation)
    return max(min_instances, math.ceil(needed - 1e-9))


def slm_cost_per_day(instances: int, hour_usd: float) -> float:
    return instances * hour_usd * 24.0


def break_even_days(one_time_usd: float, api_per_day: float, slm_per_day: float) -> float:
    saving = api_per_day - slm_per_day
    return one_time_usd / saving if saving > 0 else math.inf


def annual_costs(s: ScenarioInputs) -> dict[str, float]:
    api_day = api_cost_per_day(s.queries_per_day, s.input_tokens_per_query, s.output_tokens_per_query,
                               s.api_price_in_per_m, s.api_price_out_per_m)  # fmt: skip
    instances = serving_instances(s.queries_per_day, s.serving_queries_per_s, s.utilisation, s.min_instances)
    slm_day = slm_cost_per_day(instances, s.serving_hour_usd)
    one_time = float(sum(s.one_time_usd.values()))
    return {
        "api_usd_per_day": api_day,
        "slm_usd_per_day": slm_day,
        "instances": instances,
        "api_usd_per_year": api_day * s.days_per_year,
        "slm_usd_per_year": slm_day * s.days_per_year,
        "reduction_factor": api_day / slm_day,
        "one_time_usd": one_time,
        "break_even_days": break_even_days(one_time, api_day, slm_day),
    }


def scenario_frame(scenarios: list[ScenarioInputs]) -> pl.DataFrame:
    """Inputs and results of each scenario, one column per scenario (what table_7 is built from)."""
    rows: dict[str, list] = {}
    for s in scenarios:
        inputs = {k: v for k, v in asdict(s).items() if k not in {"name", "one_time_usd"}}
        inputs.update({f"one_time:{k}": v for k, v in s.one_time_usd.items()})
        for key, value in {**inputs, **annual_costs(s)}.items():
            rows.setdefault(key, [None] * len(scenarios))[scenarios.index(s)] = value
    return pl.DataFrame(
        {"quantity": list(rows)}
        | {
            s.name: [None if v is None else str(v) for v in (rows[k][i] for k in rows)]
            for i, s in enumerate(scenarios)
        }
    )


def sensitivity_grid(
    s: ScenarioInputs, queries_per_day: list[float], tokens_scale: list[float]
) -> pl.DataFrame:
    """Reduction factor over demand (rows) x tokens per query (columns, as a multiple of the scenario's).

    Scaling tokens per query scales the API bill and, to first order, the SLM's compute per query: an instance
    serves `queries/s / scale`. So where many instances carry the load the factor barely moves with query length;
    where one instance idles (low demand) longer queries are nearly free for the SLM and the factor grows."""
    rows = []
    for q in queries_per_day:
        row = {"queries_per_day": q}
        for scale in tokens_scale:
            varied = ScenarioInputs(**{**asdict(s), "queries_per_day": q,
                                       "input_tokens_per_query": s.input_tokens_per_query * scale,
                                       "output_tokens_per_query": s.output_tokens_per_query * scale,
                                       "serving_queries_per_s": s.serving_queries_per_s / scale})  # fmt: skip
            row[f"tokens x{scale:g}"] = annual_costs(varied)["reduction_factor"]
        rows.append(row)
    return pl.DataFrame(rows)


def cumulative_costs(s: ScenarioInputs, horizon_days: int, first_day: float = 0.01) -> pl.DataFrame:
    """Cumulative spend for the API and for the SLM (one-time costs paid at the start), on a log-spaced day grid
    from `first_day` so that a break-even within hours still shows on a log axis."""
    costs = annual_costs(s)
    days = np.logspace(np.log10(first_day), np.log10(horizon_days), 400)
    return pl.DataFrame(
        {
            "day": days,
            "api_usd": costs["api_usd_per_day"] * days,
            "slm_usd": costs["one_time_usd"] + costs["slm_usd_per_day"] * days,
        }
    )
