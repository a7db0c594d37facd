"""Split: train/val/test by groups of contexts, stratified by category, and a decontamination check.

Leakage unit: two contexts belong together when they are the same context, or share a vessel (MMSI) in
overlapping time windows (the same vessel at the same time: its positions, speeds and static data repeat). The
groups are the connected components of that relation (union-find over a per-MMSI sweep of windows), so no
context and no vessel's time window ever appears in two splits. Windows are half-open [start, end): contexts of
consecutive windows do not overlap.

Components are assigned greedily, largest first (ties broken by a seeded shuffle): each goes to the split that
leaves the (split × category) counts closest to their targets (fractions from `params.curate.split` × the
category totals; normalised squared error). Deterministic for a seed.

Decontamination (`decontamination`): how much of each test item (its context text + question, as word
n-grams) also occurs in train. A tabular AIS context shares some text with almost any other (the serialisation
header, port and zone lines), so "any shared 13-gram" (`share_13gram_any`, the GPT-3 test) is near 100 % and
says little; the headline `share_13gram` counts test items with at least half of their 13-grams in train (a
leaked or re-sampled snapshot scores near 1.0; a neighbouring snapshot only shares its header lines). Beside it:
the mean and max overlap ratio, the same at 8-grams, test items whose context shares a vessel with a train
context (at other times), and test items whose question and final answer both appear in train (another context).
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from maritime_slm.config import SplitParams
from maritime_slm.curate.verify import normalize_text
from maritime_slm.generate.records import QAPair

SPLITS = ("train", "val", "test")


# ------------------------------------------------------------------------------------------------ components
class _UnionFind:
    def __init__(self, items: Sequence[str]):
        self.parent = {i: i for i in items}

    def find(self, x: str) -> str:
        root = x
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[x] != root:
            self.parent[x], x = root, self.parent[x]
        return root

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _ts(value: Any) -> float:
    return datetime.fromisoformat(str(value)).timestamp()


def context_window(ctx: Mapping[str, Any]) -> tuple[float, float]:
    """[start, end) of a context in epoch seconds: its window, else the span of its reports."""
    if ctx.get("window_start") and ctx.get("window_end"):
        return _ts(ctx["window_start"]), _ts(ctx["window_end"])
    times = [_ts(r["ts"]) for r in ctx.get("reports", [])]
    return (min(times), max(times) + 1.0) if times else (0.0, 0.0)


def context_mmsis(ctx: Mapping[str, Any]) -> set[int]:
    out = {int(v["mmsi"]) for v in ctx.get("vessels", [])}
    return out | {int(r["mmsi"]) for r in ctx.get("reports", [])}


def context_components(contexts: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """context_id -> component id (the smallest context_id in it)."""
    uf = _UnionFind(sorted(contexts))
    by_mmsi: dict[int, list[tuple[float, float, str]]] = defaultdict(list)
    for cid, ctx in contexts.items():
        start, end = context_window(ctx)
        for m in context_mmsis(ctx):
            by_mmsi[m].append((start, end, cid))
    for windows in by_mmsi.values():
        windows.sort()
        run_end, run_cid = -math.inf, None
        for start, end, cid in windows:
            # sorted by start: a window overlaps the running cluster iff it starts before the cluster's
            # latest end, and then it overlaps the member that ends last
            if run_cid is not None and start < run_end:
                uf.union(cid, run_cid)
                run_end = max(run_end, end)
            else:
                run_end, run_cid = end, cid
    return {cid: uf.find(cid) for cid in contexts}


def windows_overlap(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    (s1, e1), (s2, e2) = context_window(a), context_window(b)
    return s1 < e2 and s2 < e1


# ------------------------------------------------------------------------------------------------ assignment
@dataclass
class SplitResult:
    pairs: list[QAPair]
    context_split: dict[str, str]
    components: dict[str, str]
    report: dict[str, Any] = field(default_factory=dict)


def assign_components(
    comp_counts: Mapping[str, Counter[str]], fractions: Mapping[str, float], seed: int
) -> dict[str, str]:
    """component -> split, greedy on the distance to the per-category targets (see the module docstring)."""
    totals: Counter[str] = Counter()
    for counts in comp_counts.values():
        totals.update(counts)
    target = {s: {c: fractions[s] * n for c, n in totals.items()} for s in SPLITS}
    filled: dict[str, Counter[str]] = {s: Counter() for s in SPLITS}
    order = sorted(comp_counts)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda comp: -sum(comp_counts[comp].values()))  # stable: the shuffle breaks ties
    assignment: dict[str, str] = {}
    for comp in order:
        counts = comp_counts[comp]

        def cost(split: str, counts: Counter[str] = counts) -> tuple[float, float]:
            # normalised squared distance of every (split, category) cell from its target, after the move
            total = 0.0
            for s in SPLITS:
                for c, t in target[s].items():
                    got = filled[s][c] + (counts[c] if s == split else 0)
                    total += (got - t) ** 2 / max(t, 1.0)
            return total, -fractions[split]

        best = min(SPLITS, key=cost)
        assignment[comp] = best
        filled[best].update(counts)
    return assignment


def split_pairs(
    pairs: Sequence[QAPair], contexts: Mapping[str, Mapping[str, Any]], params: SplitParams
) -> SplitResult:
    """Pairs with `split` set; every context of a component in one split. Pairs worded with a held-out phrasing
    (`phrasing == "unseen"`) are kept only in test, so seen and unseen wordings can be compared there."""
    used = {p.context_id for p in pairs}
    known = {cid: contexts[cid] for cid in used if cid in contexts}
    missing = sorted(used - set(known))
    comps = context_components(known)
    for cid in missing:  # no context record: its own component
        comps[cid] = cid
    comp_counts: dict[str, Counter[str]] = defaultdict(Counter)
    for p in pairs:
        comp_counts[comps[p.context_id]][p.category] += 1
    fractions = {"train": params.train, "val": params.val, "test": params.test}
    assignment = assign_components(comp_counts, fractions, params.seed)
    context_split = {cid: assignment[comp] for cid, comp in comps.items()}
    assigned = [p.model_copy(update={"split": context_split[p.context_id]}) for p in pairs]
    out = [p for p in assigned if not _held_out_wording(p)]
    report = split_report(out, fractions)
    report["unseen_wording_dropped_from_train_val"] = len(assigned) - len(out)
    report["unseen_wording_in_test"] = sum(p.phrasing == "unseen" for p in out)
    report["components"] = len(comp_counts)
    report["largest_component_pairs"] = max((sum(c.values()) for c in comp_counts.values()), default=0)
    report["leakage"] = leakage_check(out, known)
    if missing:
        report["contexts_without_record"] = len(missing)
    empty = [s for s in SPLITS if report["sizes"][s] == 0]
    if empty:
        report["warning"] = f"empty split(s) {empty}: only {len(comp_counts)} independent context groups"
    return SplitResult(out, context_split, comps, report)


def _held_out_wording(p: QAPair) -> bool:
    """A pair worded with a held-out phrasing outside the test split: dropped, so no test wording is trained on."""
    return p.phrasing == "unseen" and p.split != "test"


def split_report(pairs: Sequence[QAPair], fractions: Mapping[str, float]) -> dict[str, Any]:
    sizes = Counter(p.split for p in pairs)
    by_cat: dict[str, dict[str, int]] = defaultdict(dict)
    for (split, cat), n in Counter((p.split, p.category) for p in pairs).items():
        by_cat[cat][split] = n
    total = len(pairs) or 1
    return {
        "sizes": {s: sizes.get(s, 0) for s in SPLITS},
        "fractions_target": dict(fractions),
        "fractions_actual": {s: round(sizes.get(s, 0) / total, 4) for s in SPLITS},
        "by_category": {c: {s: v.get(s, 0) for s in SPLITS} for c, v in sorted(by_cat.items())},
        "contexts": {s: len({p.context_id for p in pairs if p.split == s}) for s in SPLITS},
    }


def leakage_check(pairs: Sequence[QAPair], contexts: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Counts that must be 0: contexts in two splits, and (vessel, overlapping window) across splits."""
    splits_of: dict[str, set[str]] = defaultdict(set)
    for p in pairs:
        splits_of[p.context_id].add(p.split or "")
    shared_contexts = sum(len(s) > 1 for s in splits_of.values())
    by_mmsi: dict[int, list[str]] = defaultdict(list)
    for cid in splits_of:
        if cid in contexts:
            for m in context_mmsis(contexts[cid]):
                by_mmsi[m].append(cid)
    clashes = 0
    for cids in by_mmsi.values():
        for i, a in enumerate(cids):
            for b in cids[i + 1 :]:
                if splits_of[a] != splits_of[b] and windows_overlap(contexts[a], contexts[b]):
                    clashes += 1
    return {"contexts_in_two_splits": shared_contexts, "vessel_window_across_splits": clashes}


# ------------------------------------------------------------------------------------------------ decontamination
_P = np.uint64(1_000_003)


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class _Vocab(dict):
    def ids(self, toks: list[str]) -> np.ndarray:
        return np.fromiter(
            (self.setdefault(t, len(self) + 1) for t in toks), dtype=np.uint64, count=len(toks)
        )


def ngram_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """Unique 64-bit polynomial hashes of the n-grams of a token-id array (empty if shorter than n)."""
    m = len(ids) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    h = np.zeros(m, dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(n):
            h = h * _P + ids[j : j + m]
    return np.unique(h)


def decontamination(
    pairs: Sequence[QAPair],
    contexts: Mapping[str, Mapping[str, Any]],
    n: int = 13,
    dirty_share: float = 0.5,
    extra_n: Sequence[int] = (8,),
) -> dict[str, Any]:
    """n-gram overlap of test (context + question) with train; see the module docstring for the definitions.

    Keys per n-gram size (`13gram`, `8gram`): `share_<n>gram` (the headline: test items with at least
    `dirty_share` of their n-grams in train), `share_<n>gram_any` (any overlap at all), `mean_overlap_<n>gram`
    and `max_overlap_<n>gram` (the per-item overlap ratio)."""
    train = [p for p in pairs if p.split == "train"]
    test = [p for p in pairs if p.split == "test"]
    out: dict[str, Any] = {"n": n, "dirty_share": dirty_share, "test_items": len(test)}
    if not test or not train:
        out["note"] = "no test or no train items"
        return out
    vocab = _Vocab()
    ctx_ids = {cid: vocab.ids(tokens(str(c.get("text", "")))) for cid, c in contexts.items()}
    q_ids = {p.id: vocab.ids(tokens(p.question)) for p in pairs}
    train_ctx = {p.context_id for p in train if p.context_id in contexts}
    for size in (n, *extra_n):
        ctx_h = {cid: ngram_hashes(ids, size) for cid, ids in ctx_ids.items()}
        q_h = {pid: ngram_hashes(ids, size) for pid, ids in q_ids.items()}
        train_h = np.unique(np.concatenate([ctx_h[c] for c in train_ctx] + [q_h[p.id] for p in train]))
        ratios, anyhit = [], 0
        for p in test:
            grams = np.union1d(ctx_h.get(p.context_id, np.empty(0, dtype=np.uint64)), q_h[p.id])
            if len(grams) == 0:
                ratios.append(0.0)
                continue
            hits = np.isin(grams, train_h, assume_unique=True)
            ratios.append(float(hits.mean()))
            anyhit += bool(hits.any())
        label = f"{size}gram"
        dirty = sum(r >= dirty_share for r in ratios)
        out[f"test_items_with_{label}_overlap_over_{dirty_share:g}"] = dirty
        out[f"share_{label}"] = round(dirty / len(test), 4)
        out[f"share_{label}_any"] = round(anyhit / len(test), 4)
        out[f"mean_overlap_{label}"] = round(float(np.mean(ratios)), 4)
        out[f"max_overlap_{label}"] = round(float(np.max(ratios)), 4)
    train_mmsis = set().union(
        *(context_mmsis(contexts[c]) for c in {p.context_id for p in train} if c in contexts)
    )
    same_vessel = sum(
        1 for p in test if p.context_id in contexts and context_mmsis(contexts[p.context_id]) & train_mmsis
    )
    out["share_same_vessel_other_time"] = round(same_vessel / len(test), 4)
    train_qa = {(normalize_text(p.question), normalize_text(p.final_answer)) for p in train}
    same_qa = sum((normalize_text(p.question), normalize_text(p.final_answer)) in train_qa for p in test)
    out["share_same_question_and_answer"] = round(same_qa / len(test), 4)
    return out
