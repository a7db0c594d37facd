"""Teacher prompts from template files: a shared frame (`teacher.md`) plus one guidance file per category.

The frame puts the context first and the category's guidance and menu after it, so the requests about one context
share one long identical prefix (the schema, the system message, the snapshot): what OpenAI's prompt caching bills
at the cached price (prefixes of 1024+ tokens) and what the local llama.cpp server keeps in its KV cache.

The teacher sees the context and a *menu* of question intents (fact keys with their meaning) for the category;
it picks one and says which in `fact_key`, so the verifier knows which fact the answer must match. In `raw` mode
the menu holds no values (the paper gave its teachers raw data only); in `facts` mode each intent shows its
computed value, which turns the teacher into a writer rather than an analyst.
"""

from __future__ import annotations

import random
from functools import lru_cache
from importlib import resources
from string import Template
from typing import Any, Literal

from maritime_slm.facts.factsheet import final_answer_text

MENU_SIZE = 8


@lru_cache(maxsize=16)
def template_text(name: str) -> str:
    return (
        (resources.files("maritime_slm.generate") / "templates" / "prompts" / f"{name}.md")
        .read_text()
        .strip()
    )


def menu(facts: list[dict[str, Any]], mode: Literal["raw", "facts"]) -> str:
    lines = []
    for f in facts:
        line = f"- {f['key']}: {f['label']}"
        if mode == "facts":
            line += f" = {final_answer_text(f)}"
        lines.append(line)
    return "\n".join(lines)


def menu_facts(facts: list[dict[str, Any]], category: str, rng: random.Random) -> list[dict[str, Any]]:
    """Up to MENU_SIZE intents of one category (a random subset when there are more)."""
    pool = [f for f in facts if f["category"] == category]
    return sorted(rng.sample(pool, MENU_SIZE) if len(pool) > MENU_SIZE else pool, key=lambda f: f["key"])


def teacher_messages(
    context_text: str, facts: list[dict[str, Any]], category: str, mode: Literal["raw", "facts"]
) -> list[dict[str, str]]:
    user = Template(template_text("teacher")).substitute(
        category_guidance=template_text(category),
        context=context_text,
        menu=menu(facts, mode),
        category=category,
    )
    return [{"role": "system", "content": template_text("system")}, {"role": "user", "content": user}]
