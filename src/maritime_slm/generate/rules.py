"""The rules teacher: deterministic, template-based QA pairs written straight from the fact sheets.

A real baseline method (and the reason the offline run yields a usable dataset): its answers are correct by
construction, so it also measures how far the LLM teachers fall short of the facts.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml

from maritime_slm.facts.factsheet import family, final_answer_text
from maritime_slm.generate.records import QAPair

TEACHER_NAME = "rules"


@lru_cache(maxsize=1)
def templates() -> dict[str, dict[str, Any]]:
    text = (resources.files("maritime_slm.generate") / "templates" / "rules.yaml").read_text()
    return yaml.safe_load(text)


@lru_cache(maxsize=1)
def paraphrase_groups() -> tuple[list[str], list[list[str]]]:
    """(question leads, groups of interchangeable phrases), all taken from seen phrasings: see paraphrase.yaml."""
    spec = yaml.safe_load(
        (resources.files("maritime_slm.generate") / "templates" / "paraphrase.yaml").read_text()
    )
    return spec["leads"], spec["groups"]


def paraphrase(template: str, share: float, rng: random.Random) -> str:
    """A seen template with each interchangeable phrase swapped for another of its group with probability share
    (never touching the {fields}, so names and numbers stay as the fact has them)."""
    if share <= 0:
        return template
    leads, groups = paraphrase_groups()
    for lead in leads:
        if template.startswith(lead + " "):
            if rng.random() < share:
                template = rng.choice([o for o in leads if o != lead]) + template[len(lead) :]
            break
    for group in groups:
        alternatives = "|".join(re.escape(p) for p in sorted(group, key=len, reverse=True))

        def swap(m: re.Match[str], group: list[str] = group) -> str:
            if rng.random() >= share:
                return m.group(0)
            new = rng.choice([o for o in group if o.lower() != m.group(0).lower()])
            return new[:1].upper() + new[1:] if m.start() == 0 and m.group(0)[:1].isupper() else new

        template = re.sub(rf"\b({alternatives})\b", swap, template, flags=re.IGNORECASE)
    return template


class _Fields(dict):
    """format_map fields; a missing support field shows as '?' rather than failing the whole pair."""

    def __missing__(self, key: str) -> str:
        return "?"


def _fields(fact: dict[str, Any]) -> _Fields:
    args = fact["key"].split(":")[1:]
    fields = _Fields(fact["support"])
    fields.update(
        value=fact["value"] if fact["kind"] != "pair" else final_answer_text(fact),
        unit=fact["unit"] or "",
        label=fact["label"],
        answer=final_answer_text(fact),
        **{f"arg{i + 1}": a for i, a in enumerate(args)},
    )
    if "pair" in fields and isinstance(fields["pair"], list):
        fields["pair"] = " and ".join(str(m) for m in fields["pair"])
    return fields


UNSEEN_SHARE = 0.25
"""Share of a family's pairs worded with a held-out phrasing, however many seen phrasings it has: enough unseen-worded
test items to measure the wording gap, the rest of the (train) pairs worded as training may see them."""


PARAPHRASE_SHARE = 0.0
"""Default share of interchangeable phrases swapped in a seen-worded question (`generate.paraphrase_share`); 0 draws
nothing from the pair's random stream, so the data are exactly those of a rules teacher without the lever. At 0.5
the default run lost 5 points on seen wordings and gained nothing on held-out ones (README, ablation)."""


def _spec(fact: dict[str, Any]) -> dict[str, Any] | None:
    """The fact family's wordings and reasoning; None when the rules teacher has no seen wording for it."""
    spec = templates().get(family(fact["key"]))
    return spec if spec and spec["questions"] else None


def pair_from_fact(
    fact: dict[str, Any], context_id: str, rng: random.Random, paraphrase_share: float = PARAPHRASE_SHARE
) -> QAPair | None:
    spec = _spec(fact)
    if spec is None:
        return None
    fields = _fields(fact)
    unseen = spec.get("unseen") or []
    if unseen and rng.random() < UNSEEN_SHARE:
        template, phrasing = rng.choice(unseen), "unseen"
    else:
        template, phrasing = paraphrase(rng.choice(spec["questions"]), paraphrase_share, rng), "seen"
    question = template.format_map(fields)
    reasoning = spec["reasoning"].format_map(fields)
    final = final_answer_text(fact)
    digest = hashlib.sha1(f"{context_id}|{fact['key']}|{question}".encode()).hexdigest()[:12]
    return QAPair(
        id=f"{TEACHER_NAME}-{digest}",
        context_id=context_id,
        category=fact["category"],
        teacher=TEACHER_NAME,
        question=question,
        reasoning=reasoning,
        answer=f"{reasoning} Final answer: {final}",
        final_answer=final,
        facts_ref=[fact["key"]],
        phrasing=phrasing,
    )


def seen_rewording(fact: dict[str, Any], seed: str) -> str | None:
    """The fact asked in one of its family's training wordings, picked by `seed` alone (never by any result): the
    twin of a test question asked in a held-out wording, so the two wordings are compared on the same fact."""
    spec = _spec(fact)
    if spec is None:
        return None
    return random.Random(seed).choice(spec["questions"]).format_map(_fields(fact))


def is_trivial(fact: dict[str, Any]) -> bool:
    """A zero / 'none' answer: true, but a model that always says '0' or 'none' would get it right too.

    Most vessels in a real snapshot are moored, so without a preference such facts made half the dataset (session
    1's default run: 52 % of pairs) and an answer-everything-zero student scored like a trained one.
    """
    return final_answer_text(fact).split(" ")[0] in {"0", "0.00", "none", "None"}


def _family_interleaved(pool: list[dict[str, Any]], rng: random.Random) -> list[dict[str, Any]]:
    """The pool in draw order: informative facts before trivial ones, and within each, one fact per family in
    turn (families in random order), so a family with a fact per vessel does not crowd out the one-per-snapshot
    families (fastest vessel, gaps, CPA)."""
    rng.shuffle(pool)
    family_order = {fam: rng.random() for fam in sorted({family(f["key"]) for f in pool})}
    drawn: Counter[tuple[bool, str]] = Counter()
    keyed = []
    for f in pool:
        slot = (is_trivial(f), family(f["key"]))
        keyed.append(((slot[0], drawn[slot], family_order[slot[1]]), f))
        drawn[slot] += 1
    return [f for _, f in sorted(keyed, key=lambda kf: kf[0])]


MAX_TRIVIAL_PER_CATEGORY = 1
"""Zero / 'none' pairs per category and context. Without a cap a snapshot with no encounter gave every collision
question the answer 'none' or 0, and the context-blind prior scored 90 % on that category (session 3's run)."""


def choose_facts(
    facts: list[dict[str, Any]], categories: list[str], n_pairs: int, rng: random.Random
) -> list[dict[str, Any]]:
    """Up to n_pairs facts spread round-robin over the categories, without repeating a fact.

    Within a category, informative facts (non-zero, not 'none') come first, spread over the fact families; then
    at most `MAX_TRIVIAL_PER_CATEGORY` trivial ones, so the dataset keeps some honest zeros without being
    dominated by them (a context short of informative facts yields fewer pairs instead).
    """
    pools = {
        c: _family_interleaved(
            [f for f in facts if f["category"] == c and family(f["key"]) in templates()], rng
        )
        for c in categories
    }
    for pool in pools.values():
        n_informative = sum(not is_trivial(f) for f in pool)
        del pool[n_informative + MAX_TRIVIAL_PER_CATEGORY :]
    chosen: list[dict[str, Any]] = []
    while len(chosen) < n_pairs and any(pools.values()):
        for c in categories:
            if pools[c] and len(chosen) < n_pairs:
                chosen.append(pools[c].pop(0))
    return chosen


def rules_pairs(
    context_id: str,
    facts: list[dict[str, Any]],
    categories: list[str],
    n_pairs: int,
    seed: int,
    paraphrase_share: float = PARAPHRASE_SHARE,
) -> list[QAPair]:
    rng = random.Random(f"{seed}:{context_id}:{TEACHER_NAME}")
    chosen = choose_facts(facts, categories, n_pairs, rng)
    pairs = [pair_from_fact(f, context_id, rng, paraphrase_share) for f in chosen]
    return [p for p in pairs if p is not None]
