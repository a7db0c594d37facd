"""Annual inference cost of an API model vs a served small model, one-time costs, break-even, sensitivity."""

from maritime_slm.cost.model import (
    ScenarioInputs,
    annual_costs,
    api_cost_per_day,
    break_even_days,
    cumulative_costs,
    sensitivity_grid,
    serving_instances,
    slm_cost_per_day,
)

__all__ = [
    "ScenarioInputs",
    "annual_costs",
    "api_cost_per_day",
    "break_even_days",
    "cumulative_costs",
    "sensitivity_grid",
    "serving_instances",
    "slm_cost_per_day",
]
