"""QA-pair generation: prompts, the rules teacher and the multi-teacher run (LLM calls go through `llm`)."""
