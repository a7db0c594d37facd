"""Paper artifacts: tables (CSV + Markdown) and figures (PNG) drawn from what the notebooks hand over."""
