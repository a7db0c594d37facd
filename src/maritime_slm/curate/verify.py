"""Verify a QA pair against its context's fact sheet: a pure function of (pair, facts, context), no I/O.

The pair's `facts_ref[0]` names the fact it answers; its `final_answer` is checked against that fact by kind
(see `maritime_slm.facts.factsheet`): `number` within the fact's tolerance after unit conversion (nm/km/m/mi/ft,
kn/km/h/mph/m/s, min/h/s; "1,234.5" = 1234.5; "12 kn" = "12 knots"), `count` exactly (digits or words: "three"),
`mmsi` exactly (a 9-digit MMSI anywhere in the text; a vessel name that names exactly one vessel of the context
also counts), `pair` as an unordered set of two MMSIs, `label` exactly after normalisation ("head on" = "head-on"
= "head_on"; "no vessel" = "none"), `name` after normalisation (case, punctuation, a small alias table for flag
states: "USA" = "US" = "United States"; "United States (Alaska)" also accepts "United States").

Status: `correct` (the final answer matches the fact and nothing else in the pair is wrong), `incorrect` (the
pair states something the facts contradict) or `unverifiable` (no fact to check it against).

Error taxonomy (`Verification.error_type`; the first that applies, in this order):

| error_type | status | meaning |
|---|---|---|
| `missing_context` | unverifiable | the pair's context or its fact sheet is not available |
| `unanswerable_question` | unverifiable | `facts_ref` is empty or names a key not in the context's sheet (the teacher picked an intent that was not offered or is not derivable from this context) |
| `format_error` | incorrect | the final answer is empty, a range, hedges between several values/entities, or has no value of the kind asked (no number, no MMSI, not a label of this kind) |
| `truncated` | incorrect | the final answer, answer or reasoning is cut off (trailing "...", a dangling "and"/"of"/",", an MMSI cut short) |
| `hallucinated_entity` | incorrect | an MMSI in the final answer, answer or reasoning that is not a vessel of this context |
| `wrong_unit` | incorrect | a number in a unit of another dimension (minutes for a distance), or the right number under the wrong unit (6.1 km for 6.1 nm) |
| `wrong_value` | incorrect | a number, count or label (type group, encounter type, "none") different from the fact |
| `wrong_entity` | incorrect | an MMSI, pair or name of this context, but not the right one (or "none" where a vessel is the answer, a vessel where "none" is) |
| `contradicts_reasoning` | incorrect | the final answer is right but the `answer` sentence states a different value/entity of the same kind |

`detail` says in words what was compared ("12.50 km = 6.75 nm; fact 6.10 nm ± 0.31 nm"). Checks are
deliberately lenient on surface form and strict on content: a bare number is read in the fact's unit (the
question names it), compound durations ("1 h 20 min") are summed, and several renderings of one value ("6.1 nm
(11.3 km)") must all agree.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from maritime_slm.generate.records import QAPair, Verification

ERROR_TYPES: tuple[str, ...] = (
    "missing_context",
    "unanswerable_question",
    "format_error",
    "truncated",
    "hallucinated_entity",
    "wrong_unit",
    "wrong_value",
    "wrong_entity",
    "contradicts_reasoning",
)
"""Every error_type `verify` can return, in the order the checks run."""

ERROR_DESCRIPTIONS: dict[str, str] = {
    "missing_context": "the pair's context or fact sheet is not available",
    "unanswerable_question": "the pair answers an intent that is not in the context's fact sheet",
    "format_error": "the final answer is not one value of the kind asked (empty, a range, hedged, no value)",
    "truncated": "the final answer, answer or reasoning is cut off",
    "hallucinated_entity": "it names an MMSI that is not a vessel of this snapshot",
    "wrong_unit": "the number is in the wrong unit (or the right number carries the wrong unit)",
    "wrong_value": "the number, count or label differs from the value computed from the data",
    "wrong_entity": "it names a vessel, pair or name of the snapshot, but not the right one",
    "contradicts_reasoning": "the final answer is right but the answer sentence states a different value",
}
"""One line per error type, for the editor prompt and the dataset card."""

# ------------------------------------------------------------------------------------------------ units
# unit -> (dimension, factor to the dimension's base unit: metres, metres per second, seconds)
_NM = 1852.0
_MI = 1609.344
UNITS: dict[str, tuple[str, float]] = {
    "nm": ("length", _NM),
    "km": ("length", 1000.0),
    "m": ("length", 1.0),
    "mi": ("length", _MI),
    "ft": ("length", 0.3048),
    "kn": ("speed", _NM / 3600.0),
    "km/h": ("speed", 1000.0 / 3600.0),
    "mph": ("speed", _MI / 3600.0),
    "m/s": ("speed", 1.0),
    "s": ("time", 1.0),
    "min": ("time", 60.0),
    "h": ("time", 3600.0),
}
# spelled-out forms -> canonical unit; the regex tries longer spellings first
_UNIT_SPELLINGS: dict[str, str] = {
    "nautical miles per hour": "kn",
    "nautical miles": "nm",
    "nautical mile": "nm",
    "nmi": "nm",
    "nm": "nm",
    "n.m.": "nm",
    "kilometres per hour": "km/h",
    "kilometers per hour": "km/h",
    "km/h": "km/h",
    "km/hr": "km/h",
    "kmh": "km/h",
    "kph": "km/h",
    "kilometres": "km",
    "kilometers": "km",
    "kilometre": "km",
    "kilometer": "km",
    "km": "km",
    "metres per second": "m/s",
    "meters per second": "m/s",
    "m/s": "m/s",
    "metres": "m",
    "meters": "m",
    "metre": "m",
    "meter": "m",
    "m": "m",
    "miles per hour": "mph",
    "mph": "mph",
    "statute miles": "mi",
    "statute mile": "mi",
    "miles": "mi",
    "mile": "mi",
    "mi": "mi",
    "feet": "ft",
    "foot": "ft",
    "ft": "ft",
    "knots": "kn",
    "knot": "kn",
    "kts": "kn",
    "kt": "kn",
    "kn": "kn",
    "minutes": "min",
    "minute": "min",
    "mins": "min",
    "min": "min",
    "hours": "h",
    "hour": "h",
    "hrs": "h",
    "hr": "h",
    "h": "h",
    "seconds": "s",
    "second": "s",
    "secs": "s",
    "sec": "s",
    "s": "s",
}
_UNIT_RE = "|".join(re.escape(u) for u in sorted(_UNIT_SPELLINGS, key=len, reverse=True))
_NUMBER_RE = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+"
QUANTITY_RE = re.compile(
    rf"(?<![\w.,])(?P<sign>[-−])?(?P<num>{_NUMBER_RE})(?![\d])(?:\s*(?P<unit>{_UNIT_RE})(?![a-z0-9/]))?",
    re.IGNORECASE,
)
MMSI_RE = re.compile(r"(?<!\d)\d{9}(?!\d)")
_TIME_RE = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?(?:\.\d+)?\b")
_DATE_RE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?)?")
_RANGE_RE = re.compile(rf"(?:{_NUMBER_RE})\s*(?:-|–|—|to)\s*(?:{_NUMBER_RE})", re.IGNORECASE)
_HEDGE_RE = re.compile(r"\b(?:or|either)\b", re.IGNORECASE)
_TIME_ORDER = {"h": 0, "min": 1, "s": 2}

_SMALL = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen".split()
)
_SMALL += "sixteen seventeen eighteen nineteen".split()
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80}
_TENS["ninety"] = 90
_WORD_NUMBERS = {w: i for i, w in enumerate(_SMALL)} | _TENS | {"a single": 1, "single": 1, "no": 0}
_WORD_NUMBER_RE = re.compile(
    r"\b(?:(?P<tens>" + "|".join(_TENS) + r")(?:[\s-](?P<unit>" + "|".join(_SMALL[1:10]) + r"))?"
    r"|(?P<small>" + "|".join(sorted(_SMALL, key=len, reverse=True)) + r"))\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Quantity:
    """A number read from text, with its canonical unit (None: a bare number) and where it was found."""

    value: float
    unit: str | None
    text: str
    start: int
    end: int
    decimals: int = 0

    @property
    def dimension(self) -> str | None:
        return UNITS[self.unit][0] if self.unit else None

    def to(self, unit: str) -> float:
        """The value in another unit of the same dimension."""
        if self.unit is None:
            return self.value
        return self.value * UNITS[self.unit][1] / UNITS[unit][1]


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between two units of the same dimension (ValueError otherwise)."""
    d1, f1 = UNITS[canonical_unit(from_unit)]
    d2, f2 = UNITS[canonical_unit(to_unit)]
    if d1 != d2:
        raise ValueError(f"cannot convert {from_unit} ({d1}) to {to_unit} ({d2})")
    return value * f1 / f2


def canonical_unit(unit: str) -> str:
    return _UNIT_SPELLINGS.get(unit.strip().lower(), unit.strip().lower())


def _blank(text: str, pattern: re.Pattern[str]) -> str:
    """Replace matches with spaces (keeps offsets), so times, dates and MMSIs never read as quantities."""
    return pattern.sub(lambda m: " " * len(m.group(0)), text)


def _clean(text: str) -> str:
    text = unicodedata.normalize("NFKC", text or "").replace("\u2212", "-")
    return text.replace("\u00a0", " ").replace("\u202f", " ")


def quantities(text: str) -> list[Quantity]:
    """Numbers in `text` with their units; MMSIs, clock times and dates are skipped. Compound durations
    written as consecutive time quantities in decreasing units ("1 h 20 min") become one quantity."""
    text = _clean(text)
    masked = _blank(_blank(_blank(text, _DATE_RE), _TIME_RE), MMSI_RE)
    found: list[Quantity] = []
    for m in QUANTITY_RE.finditer(masked):
        raw = m.group("num")
        value = float(raw.replace(",", ""))
        if m.group("sign"):
            value = -value
        decimals = len(raw.split(".", 1)[1]) if "." in raw else 0
        unit = canonical_unit(m.group("unit")) if m.group("unit") else None
        found.append(Quantity(value, unit, m.group(0).strip(), m.start(), m.end(), decimals))
    merged: list[Quantity] = []
    for q in found:
        prev = merged[-1] if merged else None
        if (
            prev is not None
            and prev.dimension == "time"
            and q.dimension == "time"
            and _TIME_ORDER[q.unit] > _TIME_ORDER[prev.unit]  # type: ignore[index]
            and re.fullmatch(r"[\s,]*(?:and)?\s*", masked[prev.end : q.start])
        ):
            value = prev.value + q.to(prev.unit)  # type: ignore[arg-type]
            merged[-1] = Quantity(value, prev.unit, f"{prev.text} {q.text}", prev.start, q.end, 3)
            continue
        merged.append(q)
    return merged


def word_numbers(text: str) -> list[int]:
    """Integers written as words ("three", "twenty-one", "a single"; "no" only as in "no vessels")."""
    out = []
    for m in _WORD_NUMBER_RE.finditer(text):
        if m.group("tens"):
            out.append(
                _TENS[m.group("tens").lower()]
                + (_SMALL.index(m.group("unit").lower()) if m.group("unit") else 0)
            )
        else:
            out.append(_SMALL.index(m.group("small").lower()))
    return out


def mmsis(text: str) -> list[int]:
    """Every 9-digit MMSI in the text, in order, without repeats."""
    seen: dict[int, None] = {}
    for m in MMSI_RE.finditer(_clean(text)):
        seen[int(m.group(0))] = None
    return list(seen)


# ------------------------------------------------------------------------------------------------ labels, names
_STOPWORDS = {"a", "an", "the", "it", "is", "its", "this", "of", "vessel", "vessels", "ship", "ships", "type"}
_STOPWORDS |= {"group", "situation", "encounter", "answer"}
LABEL_ALIASES: dict[str, str] = {
    # COLREGs encounter types (facts write "head-on")
    "head on": "head-on",
    "headon": "head-on",
    "reciprocal": "head-on",
    "crossing": "crossing",
    "overtaking": "overtaking",
    "overtake": "overtaking",
    # "nothing of the kind" answers
    "none": "none",
    "no": "none",
    "no one": "none",
    "nobody": "none",
    "nothing": "none",
    "neither": "none",
    "n a": "none",
    "na": "none",
    "not applicable": "none",
    "no pair": "none",
    "no pairs": "none",
    "no such": "none",
    "there is none": "none",
    "there are none": "none",
    "no vessel": "none",
    "no vessels": "none",
    "no ship": "none",
    "none of the vessels": "none",
    "no encounter": "none",
    # give-way
    "both": "both",
    "both must give way": "both",
    "each": "both",
    # type groups (facts write the snake_case group)
    "tug tow": "tug_tow",
    "tug": "tug_tow",
    "tugs": "tug_tow",
    "towing": "tug_tow",
    "tug and tow": "tug_tow",
    "tugboat": "tug_tow",
    "pleasure sailing": "pleasure_sailing",
    "pleasure craft": "pleasure_sailing",
    "pleasure": "pleasure_sailing",
    "sailing": "pleasure_sailing",
    "yacht": "pleasure_sailing",
    "pleasure and sailing": "pleasure_sailing",
    "high speed craft": "high_speed_craft",
    "high speed": "high_speed_craft",
    "hsc": "high_speed_craft",
    "passenger": "passenger",
    "cargo": "cargo",
    "freighter": "cargo",
    "tanker": "tanker",
    "tankers": "tanker",
    "fishing": "fishing",
    "fishing boat": "fishing",
    "other": "other",
}
# labels recognised inside a sentence (for answers that wrap the label, and for contradictions); the bare
# "no"/"each"/"na" forms are too common in prose to count there
_SENTENCE_LABELS = {
    alias: label
    for alias, label in LABEL_ALIASES.items()
    if alias not in {"no", "each", "na", "n a", "neither", "other"}
}
_SENTENCE_LABEL_RE = re.compile(
    r"\b(" + "|".join(re.escape(a) for a in sorted(_SENTENCE_LABELS, key=len, reverse=True)) + r")\b"
)

FLAG_ALIASES: dict[str, str] = {
    "usa": "united states",
    "us": "united states",
    "u s": "united states",
    "u s a": "united states",
    "united states of america": "united states",
    "america": "united states",
    "uk": "united kingdom",
    "u k": "united kingdom",
    "great britain": "united kingdom",
    "britain": "united kingdom",
    "gb": "united kingdom",
    "republic of korea": "south korea",
    "korea": "south korea",
    "rok": "south korea",
    "prc": "china",
    "people s republic of china": "china",
    "russian federation": "russia",
    "uae": "united arab emirates",
    "the netherlands": "netherlands",
    "holland": "netherlands",
    "marshall is": "marshall islands",
    "rmi": "marshall islands",
    "hk": "hong kong",
    "hong kong china": "hong kong",
    "pa": "panama",
    "lr": "liberia",
    "mh": "marshall islands",
    "bs": "bahamas",
    "the bahamas": "bahamas",
    "ca": "canada",
    "mx": "mexico",
    "sg": "singapore",
    "mt": "malta",
    "cy": "cyprus",
    "gr": "greece",
    "no": "norway",
    "dk": "denmark",
}


def normalize_text(text: str) -> str:
    """Lower case, accents folded, punctuation to spaces, single spaces."""
    text = unicodedata.normalize("NFKD", _clean(str(text))).encode("ascii", "ignore").decode()
    return re.sub(r"\s+", " ", re.sub(r"[^a-z0-9]+", " ", text.lower())).strip()


def _strip_stop(norm: str) -> str:
    words = [w for w in norm.split() if w not in _STOPWORDS]
    return " ".join(words) if words else norm


def canonical_label(text: str) -> str:
    """The canonical form of a label answer ("Head on" -> "head-on", "Tug/Tow" -> "tug_tow", "No vessel" -> "none")."""
    norm = normalize_text(str(text).replace("_", " "))
    for candidate in (norm, _strip_stop(norm)):
        if candidate in LABEL_ALIASES:
            return LABEL_ALIASES[candidate]
    return _strip_stop(norm).replace(" ", "_")


def labels_in(text: str) -> set[str]:
    """Canonical labels mentioned anywhere in a sentence."""
    norm = normalize_text(str(text).replace("_", " "))
    return {_SENTENCE_LABELS[m.group(1)] for m in _SENTENCE_LABEL_RE.finditer(norm)}


def name_keys(name: str) -> set[str]:
    """Every normalised form under which a name or flag state matches: itself, without a parenthesised part
    ("United States (Alaska)" -> "united states"), and its alias ("USA" -> "united states")."""
    text = _clean(str(name))
    forms = {normalize_text(text), normalize_text(re.sub(r"\(.*?\)", " ", text))}
    forms |= {normalize_text(re.sub(r"^(?:the|flag of|flagged in)\s+", "", f)) for f in list(forms)}
    forms |= {FLAG_ALIASES[f] for f in list(forms) if f in FLAG_ALIASES}
    return {f for f in forms if f}


def names_match(answer: str, truth: str) -> bool:
    return bool(name_keys(answer) & name_keys(truth))


# ------------------------------------------------------------------------------------------------ verification
_DANGLING = {"and", "or", "of", "the", "to", "a", "an", "is", "at", "with", "from", "by", "for", "in", "was"}
_DANGLING |= {"are", "which", "that", "between", "than", "vessel", "mmsi"}


def _bad(error_type: str, detail: str, status: str = "incorrect") -> Verification:
    return Verification(status=status, error_type=error_type, detail=detail)  # type: ignore[arg-type]


def _fmt_num(x: float) -> str:
    return f"{x:,.3f}".rstrip("0").rstrip(".") if abs(x) < 1e6 else f"{x:.4g}"


def looks_truncated(text: str) -> str | None:
    """Why a text looks cut off (None if it doesn't): an ellipsis, or ending on a dangling word or comma."""
    stripped = _clean(text).rstrip()
    if not stripped:
        return None
    if stripped.endswith(("...", "…")):
        return "ends with an ellipsis"
    if stripped[-1] in ",:;([{-":
        return f"ends with {stripped[-1]!r}"
    last = re.findall(r"[A-Za-z]+$", stripped)
    if last and last[0].lower() in _DANGLING:
        return f"ends on the word {last[0]!r}"
    return None


def _context_mmsis(context: Mapping[str, Any] | None) -> set[int] | None:
    """The MMSIs of the context's vessels, and any other 9-digit number its text shows (a vessel that
    broadcasts a number as its name): quoting what the context shows is never a hallucination."""
    if not context or "vessels" not in context:
        return None
    return {int(v["mmsi"]) for v in context["vessels"]} | set(mmsis(str(context.get("text") or "")))


def _vessel_by_name(context: Mapping[str, Any] | None, text: str) -> list[int]:
    """MMSIs of the context's vessels whose (normalised) name is the text or appears in it as whole words."""
    if not context:
        return []
    norm = f" {normalize_text(text)} "
    hits = []
    for v in context.get("vessels", []):
        name = normalize_text(v.get("name") or "")
        if name and f" {name} " in norm:
            hits.append(int(v["mmsi"]))
    return hits


def _number_check(final: str, fact: Mapping[str, Any]) -> Verification:
    unit = canonical_unit(fact.get("unit") or "")
    if unit not in UNITS:
        return _check_bare_numbers(final, fact)
    value, tol = float(fact["value"]), float(fact.get("tolerance") or 0.0)
    eps = 1e-6 * max(1.0, abs(value))
    dim = UNITS[unit][0]
    if _RANGE_RE.search(_blank(_blank(_clean(final), _DATE_RE), _TIME_RE)):
        return _bad("format_error", f"final answer {final!r} gives a range, not one value")
    qs = quantities(final)
    if not qs:
        return _bad(
            "format_error", f"no number in the final answer {final!r} (fact {_fmt_num(value)} {unit})"
        )
    same = [q for q in qs if q.dimension == dim]
    other = [q for q in qs if q.dimension not in (None, dim)]
    truth = f"fact {_fmt_num(value)} {unit} ± {_fmt_num(tol)} {unit}"
    if not same:
        if other:
            q = other[0]
            return _bad(
                "wrong_unit", f"{q.text!r} is a {q.dimension}, the question asks for a {dim} in {unit}"
            )
        bare = [q for q in qs if q.unit is None]
        if len({q.value for q in bare}) > 1:
            return _bad("format_error", f"several numbers and no unit in {final!r}; {truth}")
        got = bare[0].value
        if abs(got - value) <= tol + eps:
            return Verification(
                status="correct", detail=f"{_fmt_num(got)} (no unit, read as {unit}); {truth}"
            )
        return _bad("wrong_value", f"{_fmt_num(got)} (no unit, read as {unit}); {truth}")
    if len(same) > 1 and _HEDGE_RE.search(final):
        return _bad("format_error", f"final answer {final!r} hedges between several values")
    for q in same:
        got = q.to(unit)
        if abs(got - value) > tol + eps:
            shown = f"{q.text} = {_fmt_num(got)} {unit}" if q.unit != unit else q.text
            if q.unit != unit and abs(q.value - value) <= tol + eps:
                return _bad(
                    "wrong_unit", f"{q.text}: the number is right in {unit} but labelled {q.unit}; {truth}"
                )
            return _bad("wrong_value", f"{shown}; {truth}")
    shown = ", ".join(q.text if q.unit == unit else f"{q.text} = {_fmt_num(q.to(unit))} {unit}" for q in same)
    return Verification(status="correct", detail=f"{shown} within tolerance; {truth}")


def _integers(text: str) -> list[int]:
    """Integer values written in a text (digits or words), skipping MMSIs, times, dates and unit quantities."""
    values = [int(q.value) for q in quantities(text) if q.unit is None and q.value == int(q.value)]
    masked = _blank(_blank(_clean(text), MMSI_RE), QUANTITY_RE)
    values += word_numbers(masked)
    if re.search(r"\b(?:none|no vessels?|no pairs?|nothing)\b", masked, re.IGNORECASE):
        values.append(0)
    return values


def _check_bare_numbers(final: str, fact: Mapping[str, Any]) -> Verification:
    """A number fact without a known unit: compare the bare number."""
    qs = [q for q in quantities(final)]
    if not qs:
        return _bad("format_error", f"no number in the final answer {final!r}")
    value, tol = float(fact["value"]), float(fact.get("tolerance") or 0.0)
    got = qs[0].value
    if abs(got - value) <= tol + 1e-6 * max(1.0, abs(value)):
        return Verification(
            status="correct", detail=f"{_fmt_num(got)}; fact {_fmt_num(value)} ± {_fmt_num(tol)}"
        )
    return _bad("wrong_value", f"{_fmt_num(got)}; fact {_fmt_num(value)} ± {_fmt_num(tol)}")


def _count_check(final: str, fact: Mapping[str, Any]) -> Verification:
    value = int(fact["value"])
    unit_qs = [q for q in quantities(final) if q.unit is not None]
    ints = set(_integers(final))
    if not ints:
        if unit_qs:
            return _bad("wrong_unit", f"{unit_qs[0].text!r} where a count is asked (fact {value})")
        return _bad("format_error", f"no count in the final answer {final!r} (fact {value})")
    if len(ints) > 1:
        if value in ints and not _HEDGE_RE.search(final):
            # "3 of the 5 vessels": the stated count is the first number
            first = _integers(final)[0]
            if first == value:
                return Verification(
                    status="correct", detail=f"count {first} (first of {sorted(ints)}); fact {value}"
                )
        return _bad("format_error", f"several counts {sorted(ints)} in {final!r} (fact {value})")
    got = ints.pop()
    if got == value:
        return Verification(status="correct", detail=f"count {got}; fact {value}")
    return _bad("wrong_value", f"count {got}; fact {value}")


def _mmsi_check(final: str, fact: Mapping[str, Any], context: Mapping[str, Any] | None) -> Verification:
    value = int(fact["value"])
    found = mmsis(final)
    if not found:
        by_name = _vessel_by_name(context, final)
        if len(by_name) == 1:
            ok = by_name[0] == value
            detail = f"the name in {final!r} is MMSI {by_name[0]}; fact MMSI {value}"
            return Verification(status="correct", detail=detail) if ok else _bad("wrong_entity", detail)
        if canonical_label(final) == "none" or labels_in(final) == {"none"}:
            return _bad("wrong_entity", f"answer says none; fact MMSI {value}")
        partial = re.findall(r"(?<!\d)\d{5,8}(?!\d)", final)
        if partial and any(str(value).startswith(p) for p in partial):
            return _bad("truncated", f"MMSI cut short in {final!r}; fact MMSI {value}")
        return _bad("format_error", f"no MMSI in the final answer {final!r} (fact MMSI {value})")
    if len(found) > 1:
        if value in found:
            return _bad("format_error", f"several MMSIs {found} where one is asked (fact MMSI {value})")
        return _bad("wrong_entity", f"MMSIs {found}; fact MMSI {value}")
    if found[0] == value:
        return Verification(status="correct", detail=f"MMSI {value}")
    return _bad("wrong_entity", f"MMSI {found[0]}; fact MMSI {value}")


def _pair_check(final: str, fact: Mapping[str, Any]) -> Verification:
    truth = {int(m) for m in fact["value"]}
    shown = " and ".join(str(m) for m in sorted(truth))
    found = set(mmsis(final))
    if not found:
        if canonical_label(final) == "none":
            return _bad("wrong_entity", f"answer says none; fact pair {shown}")
        return _bad("format_error", f"no MMSIs in the final answer {final!r} (fact pair {shown})")
    if found == truth:
        return Verification(status="correct", detail=f"pair {shown} (any order)")
    if len(found) > 2 and truth <= found:
        return _bad("format_error", f"{len(found)} MMSIs where a pair is asked (fact pair {shown})")
    return _bad("wrong_entity", f"MMSIs {sorted(found)}; fact pair {shown}")


def _label_check(final: str, fact: Mapping[str, Any], context: Mapping[str, Any] | None) -> Verification:
    truth = canonical_label(str(fact["value"]))
    found = mmsis(final)
    if found:
        if truth == "none":
            return _bad("wrong_entity", f"answer names MMSI {found[0]}; fact: none")
        return _bad("format_error", f"an MMSI where the label {truth!r} is asked")
    got = canonical_label(final)
    if got == truth:
        return Verification(status="correct", detail=f"label {truth!r}")
    mentioned = labels_in(final)
    if len(mentioned) == 1:
        got = mentioned.pop()
        if got == truth:
            return Verification(status="correct", detail=f"label {truth!r} (in {final!r})")
    elif len(mentioned) > 1:
        return _bad("format_error", f"several labels {sorted(mentioned)} in {final!r} (fact {truth!r})")
    if truth == "none" and _vessel_by_name(context, final):
        return _bad("wrong_entity", f"answer names a vessel ({final!r}); fact: none")
    return _bad("wrong_value", f"label {got!r}; fact {truth!r}")


def _name_check(final: str, fact: Mapping[str, Any], context: Mapping[str, Any] | None) -> Verification:
    truth = str(fact["value"])
    if names_match(final, truth):
        return Verification(status="correct", detail=f"{final!r} = {truth!r}")
    # a sentence around the name: accept it if the truth's words appear and no other candidate does
    candidates = _context_names(context) | {truth}
    norm = f" {normalize_text(final)} "
    hits = {c for c in candidates if any(f" {k} " in norm for k in name_keys(c) if len(k) > 2)}
    if hits and all(names_match(h, truth) for h in hits):
        return Verification(status="correct", detail=f"{truth!r} in {final!r}")
    if len(hits) > 1:
        return _bad("format_error", f"several names {sorted(hits)} in {final!r} (fact {truth!r})")
    if not normalize_text(final):
        return _bad("format_error", f"no name in the final answer {final!r}")
    return _bad("wrong_entity", f"{final!r}; fact {truth!r}")


def _context_names(context: Mapping[str, Any] | None) -> set[str]:
    if not context:
        return set()
    names = {str(v["flag"]) for v in context.get("vessels", []) if v.get("flag")}
    return names | {str(v["name"]) for v in context.get("vessels", []) if v.get("name")}


def check_final_answer(
    final_answer: str, fact: Mapping[str, Any], context: Mapping[str, Any] | None = None
) -> Verification:
    """Only the final answer against one fact (what the evaluation's grounded scoring also uses)."""
    final = _clean(final_answer).strip()
    if not final:
        return _bad("format_error", "empty final answer")
    kind = fact["kind"]
    if kind == "number":
        return _number_check(final, fact)
    if kind == "count":
        return _count_check(final, fact)
    if kind == "mmsi":
        return _mmsi_check(final, fact, context)
    if kind == "pair":
        return _pair_check(final, fact)
    if kind == "label":
        return _label_check(final, fact, context)
    if kind == "name":
        return _name_check(final, fact, context)
    return _bad("unanswerable_question", f"fact kind {kind!r} has no checker", status="unverifiable")


def _agrees(text: str, final: str, fact: Mapping[str, Any], context: Mapping[str, Any] | None) -> str | None:
    """None if `text` is consistent with the (correct) final answer, else what it states instead.

    Consistent means: the text states no value of the fact's kind, or at least one it states is the final
    answer's (reasoning and answers mention intermediate values too, so one match is enough)."""
    kind = fact["kind"]
    if kind == "number":
        unit = canonical_unit(fact.get("unit") or "")
        if unit not in UNITS:
            return None
        dim, tol = UNITS[unit][0], float(fact.get("tolerance") or 0.0)
        stated = [q for q in quantities(text) if q.dimension == dim]
        value = float(fact["value"])
        if stated and not any(abs(q.to(unit) - value) <= tol + 1e-6 * max(1.0, abs(value)) for q in stated):
            return ", ".join(q.text for q in stated[:3])
        return None
    if kind == "count":
        stated = set(_integers(text))
        if stated and int(fact["value"]) not in stated:
            return ", ".join(str(s) for s in sorted(stated)[:3])
        return None
    if kind in ("mmsi", "pair"):
        truth = {int(fact["value"])} if kind == "mmsi" else {int(m) for m in fact["value"]}
        stated = set(mmsis(text)) | set(_vessel_by_name(context, text))
        if stated and not truth <= stated:
            return ", ".join(str(s) for s in sorted(stated)[:3])
        return None
    if kind == "label":
        truth = canonical_label(str(fact["value"]))
        family = _label_family(truth)
        stated = {label for label in labels_in(text) if _label_family(label) == family}
        if stated and truth not in stated and not _mentions_label(text, truth):
            return ", ".join(sorted(stated))
        return None
    if kind == "name":
        truth = str(fact["value"])
        norm = f" {normalize_text(text)} "
        stated = {
            c
            for c in _context_names(context) | {truth}
            if any(f" {k} " in norm for k in name_keys(c) if len(k) > 2)
        }
        if stated and not any(names_match(s, truth) for s in stated):
            return ", ".join(sorted(stated)[:3])
    return None


_ENCOUNTERS = {"head-on", "crossing", "overtaking"}
_WEAK_ALIASES = {"no", "na", "n a", "each"}


def _mentions_label(text: str, label: str) -> bool:
    """Whether the text names this label by any of its spellings (also the ones too common to search for
    in general, like "other": here we only ask whether the right one is there)."""
    norm = f" {normalize_text(str(text).replace('_', ' '))} "
    spellings = {a for a, v in LABEL_ALIASES.items() if v == label and a not in _WEAK_ALIASES}
    spellings.add(normalize_text(label.replace("_", " ")))
    return any(f" {a} " in norm for a in spellings)


def _label_family(label: str) -> str:
    if label in _ENCOUNTERS:
        return "encounter"
    if label in {"none", "both"}:
        return "generic"
    return "type_group"


def verify(
    pair: QAPair | Mapping[str, Any],
    facts: Iterable[Mapping[str, Any]] | Mapping[str, Mapping[str, Any]] | None,
    context: Mapping[str, Any] | None = None,
) -> Verification:
    """Check one pair against its context's fact sheet (a list of facts or a dict key -> fact).

    `context` (the context dict) lets the verifier catch MMSIs that are not in the snapshot and read vessel
    names; without it those checks are skipped. Pure: no I/O, no model calls.
    """
    p = pair if isinstance(pair, QAPair) else QAPair.model_validate(pair)
    if facts is None:
        return _bad("missing_context", f"no fact sheet for context {p.context_id}", status="unverifiable")
    sheet = facts if isinstance(facts, Mapping) else {f["key"]: f for f in facts}
    key = p.facts_ref[0].strip() if p.facts_ref else ""
    if not key:
        return _bad("unanswerable_question", "the pair names no fact key", status="unverifiable")
    fact = sheet.get(key)
    if fact is None:
        return _bad(
            "unanswerable_question",
            f"fact key {key!r} is not in the sheet of {p.context_id} (not offered or not derivable here)",
            status="unverifiable",
        )
    final = _clean(p.final_answer).strip()
    if not final:
        return _bad("format_error", "empty final answer")
    for field, text in (("final answer", final), ("answer", p.answer), ("reasoning", p.reasoning)):
        why = looks_truncated(text)
        if why and not (
            field == "final answer" and fact["kind"] in ("label", "name") and why.startswith("ends on")
        ):
            return _bad("truncated", f"the {field} {why}: {text[-60:]!r}")
    known = _context_mmsis(context)
    if known is not None:
        for field, text in (("final answer", final), ("answer", p.answer), ("reasoning", p.reasoning)):
            ghosts = [m for m in mmsis(text) if m not in known]
            if ghosts:
                return _bad(
                    "hallucinated_entity", f"MMSI {ghosts[0]} in the {field} is not a vessel of this context"
                )
    result = check_final_answer(final, fact, context)
    if result.status != "correct":
        return result
    stated = _agrees(p.answer, final, fact, context) if p.answer.strip() else None
    if stated is not None:
        return _bad(
            "contradicts_reasoning", f"final answer {final!r} is right but the answer states {stated}"
        )
    return result


def verify_pairs(
    pairs: Iterable[QAPair],
    facts: Mapping[str, list[dict[str, Any]]],
    contexts: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[QAPair]:
    """Copies of the pairs with `verification` filled (facts and contexts keyed by context_id)."""
    out = []
    for p in pairs:
        ctx = contexts.get(p.context_id) if contexts is not None else None
        out.append(p.model_copy(update={"verification": verify(p, facts.get(p.context_id), ctx)}))
    return out
