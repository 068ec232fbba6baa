"""Relative and absolute dates in a sentence, resolved against the time the episode happened.

"yesterday" said on 8 May 2023 is 7 May 2023. Why not dateparser: it is slow (ms per call) and
resolves against the wall clock by default; these few patterns cover what chats and notes say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december"
    .split())}
_MONTH_ABBR = {k[:3]: v for k, v in MONTHS.items()} | {"sept": 9}
WEEKDAYS = {d: i for i, d in enumerate(
    "monday tuesday wednesday thursday friday saturday sunday".split())}
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "seven": 7, "eight": 8, "nine": 9, "ten": 10, "couple of": 2, "few": 3}
_NUM = r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|a couple of|a few)"
_MON = r"(" + "|".join(sorted(list(MONTHS) + list(_MONTH_ABBR), key=len, reverse=True)) + r")\.?"
_WD = r"(" + "|".join(WEEKDAYS) + r")"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b")),
    ("dmy", re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?\s+(?:of\s+)?" + _MON + r",?\s+((?:19|20)\d\d)\b",
                       re.I)),
    ("mdy", re.compile(r"\b" + _MON + r"\s+(\d{1,2})(?:st|nd|rd|th)?,?\s+((?:19|20)\d\d)\b", re.I)),
    ("my", re.compile(r"\b(?:in\s+)?" + _MON + r"\s+((?:19|20)\d\d)\b", re.I)),
    ("yesterday", re.compile(r"\byesterday\b", re.I)),
    ("today", re.compile(r"\b(today|tonight|this morning|this afternoon|this evening)\b", re.I)),
    ("tomorrow", re.compile(r"\btomorrow\b", re.I)),
    ("ago", re.compile(r"\b" + _NUM + r"\s+(day|week|month|year)s?\s+ago\b", re.I)),
    ("in_n", re.compile(r"\bin\s+" + _NUM + r"\s+(day|week|month|year)s?\b", re.I)),
    ("last_unit", re.compile(r"\b(last|next|this)\s+(week|month|year|weekend)\b", re.I)),
    ("weekday", re.compile(r"\b(last|next|this|on)?\s*" + _WD + r"\b", re.I)),
    ("month", re.compile(r"\b(?:in|since|during|last|this|early|late|mid-?)\s+" + _MON + r"(?!\s*\d)", re.I)),
    ("year", re.compile(r"\b(?:in|since|during)\s+((?:19|20)\d\d)\b", re.I)),
]


@dataclass(frozen=True)
class DateMention:
    start: int
    end: int
    text: str
    day: date
    precision: str  # day, week, month, year

    def render(self) -> str:
        if self.precision == "day":
            return f"on {self.day.day} {self.day.strftime('%B')} {self.day.year}"
        if self.precision == "week":
            return f"in the week of {self.day.day} {self.day.strftime('%B')} {self.day.year}"
        if self.precision == "month":
            return f"in {self.day.strftime('%B')} {self.day.year}"
        return f"in {self.day.year}"

    @property
    def iso(self) -> str:
        if self.precision == "year":
            return f"{self.day.year:04d}"
        if self.precision == "month":
            return f"{self.day.year:04d}-{self.day.month:02d}"
        return self.day.isoformat()


def _n(word: str) -> int:
    w = word.lower().removeprefix("a ").strip() if word.lower().startswith("a c") else word.lower()
    return int(w) if w.isdigit() else NUMBERS.get(w, 1)


def _month(word: str) -> int:
    w = word.lower().rstrip(".")
    return MONTHS.get(w) or _MONTH_ABBR[w[:4] if w.startswith("sept") else w[:3]]


def _shift(d: date, unit: str, n: int) -> date:
    unit = unit.lower()
    if unit == "day":
        return d + timedelta(days=n)
    if unit == "week":
        return d + timedelta(weeks=n)
    if unit == "month":
        m = d.month - 1 + n
        return date(d.year + m // 12, m % 12 + 1, 1)
    return date(d.year + n, 1, 1)


def find_dates(text: str, at: datetime | None) -> list[DateMention]:
    """Every date the text mentions, absolute ones always, relative ones when `at` is known."""
    found: list[DateMention] = []
    taken: list[tuple[int, int]] = []
    base = at.date() if at else None
    for kind, pat in _PATTERNS:
        for m in pat.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            got = _resolve(kind, m, base)
            if got is None:
                continue
            day, precision = got
            taken.append((m.start(), m.end()))
            found.append(DateMention(m.start(), m.end(), m.group(0).strip(), day, precision))
    found.sort(key=lambda x: x.start)
    return found


def _resolve(kind: str, m: re.Match[str], base: date | None) -> tuple[date, str] | None:
    g = m.groups()
    try:
        if kind == "iso":
            return date(int(g[0]), int(g[1]), int(g[2])), "day"
        if kind == "dmy":
            return date(int(g[2]), _month(g[1]), int(g[0])), "day"
        if kind == "mdy":
            return date(int(g[2]), _month(g[0]), int(g[1])), "day"
        if kind == "my":
            return date(int(g[1]), _month(g[0]), 1), "month"
        if kind == "year":
            return date(int(g[0]), 1, 1), "year"
    except (ValueError, KeyError):
        return None
    if base is None:
        return None
    if kind == "month":
        mo = _month(g[0])
        # "in June" said in August is this year's June; said in March, usually last year's
        # in past-tense talk, but plans ("in June we'll...") point forward: take the nearest.
        year = base.year
        if mo - base.month > 6:
            year -= 1
        elif base.month - mo > 6:
            year += 1
        return date(year, mo, 1), "month"
    if kind == "yesterday":
        return base - timedelta(days=1), "day"
    if kind == "today":
        return base, "day"
    if kind == "tomorrow":
        return base + timedelta(days=1), "day"
    if kind in ("ago", "in_n"):
        n = _n(g[0]) * (-1 if kind == "ago" else 1)
        unit = g[1].lower()
        return _shift(base, unit, n), {"day": "day", "week": "week", "month": "month",
                                       "year": "year"}[unit]
    if kind == "last_unit":
        which, unit = g[0].lower(), g[1].lower()
        n = {"last": -1, "next": 1, "this": 0}[which]
        if unit == "weekend":
            sat = base + timedelta(days=(5 - base.weekday()) % 7)
            if which == "last":
                sat = base - timedelta(days=(base.weekday() - 5) % 7 or 7)
            elif which == "next":
                sat += timedelta(weeks=1) if (5 - base.weekday()) % 7 < 2 else timedelta(0)
            return sat, "day"
        if unit == "week":
            monday = base - timedelta(days=base.weekday())
            return monday + timedelta(weeks=n), "week"
        if unit == "month":
            return _shift(base.replace(day=1), "month", n), "month"
        return date(base.year + n, 1, 1), "year"
    if kind == "weekday":
        which = (g[0] or "").lower()
        wd = WEEKDAYS[g[1].lower()]
        if which == "next":
            return base + timedelta(days=(wd - base.weekday()) % 7 or 7), "day"
        if which == "this":
            return base + timedelta(days=(wd - base.weekday()) % 7), "day"
        # "last Friday" and plain "on Friday" in a past-tense chat mean the one before.
        return base - timedelta(days=(base.weekday() - wd) % 7 or 7), "day"
    return None
