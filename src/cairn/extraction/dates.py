"""Relative and absolute dates in a sentence, resolved against the time the episode happened.

"yesterday" said on 8 May 2023 is 7 May 2023. Words that name a day without saying which one
("on Friday", "in March", "on the 20th", "October 1") are resolved by the sentence's tense:
"we got married on Saturday" is the Saturday before, "dinner with Ana on Saturday" the one
after. Why not dateparser: it is slow (ms per call) and resolves against the wall clock by
default; these few patterns cover what chats and notes say.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

Tense = Literal["past", "future"]

MONTHS = {m: i + 1 for i, m in enumerate(
    ["january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"])}
_MONTH_ABBR = {k[:3]: v for k, v in MONTHS.items()} | {"sept": 9}
WEEKDAYS = {d: i for i, d in enumerate(
    ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"])}
NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
           "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
           "couple of": 2, "few": 3}
SEASONS = {"spring": 3, "summer": 6, "autumn": 9, "fall": 9, "winter": 12}
_NUM = (r"(\d+|a|an|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|"
        r"a couple of|a few)")
_MON = r"(" + "|".join(sorted(list(MONTHS) + list(_MONTH_ABBR), key=len, reverse=True)) + r")\.?"
# A month with a day and no year is only read when capitalised: "may 5" is too often a verb.
_CAP_MON = r"(" + "|".join(sorted({m.capitalize() for m in list(MONTHS) + list(_MONTH_ABBR)},
                                  key=len, reverse=True)) + r")\.?"
_WD = r"(" + "|".join(WEEKDAYS) + r")"
_ORD = r"(?:st|nd|rd|th)?"

_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("iso", re.compile(r"\b((?:19|20)\d\d)-(\d\d)-(\d\d)\b")),
    ("dmy", re.compile(r"\b(\d{1,2})" + _ORD + r"\s+(?:of\s+)?" + _MON + r",?\s+((?:19|20)\d\d)\b",
                       re.I)),
    ("mdy", re.compile(r"\b" + _MON + r"\s+(\d{1,2})" + _ORD + r",?\s+((?:19|20)\d\d)\b", re.I)),
    ("my", re.compile(r"\b(?:in\s+)?" + _MON + r"\s+((?:19|20)\d\d)\b", re.I)),
    ("dm", re.compile(r"\b(\d{1,2})" + _ORD + r"\s+(?:of\s+)?" + _CAP_MON + r"(?![\w-])")),
    ("md", re.compile(r"\b" + _CAP_MON + r"\s+(\d{1,2})" + _ORD + r"\b(?![:.]\d)")),
    ("nth", re.compile(r"\bthe\s+(\d{1,2})(?:st|nd|rd|th)\b(?!\s+(?:century|floor|time|anniversary|birthday))",
                       re.I)),
    ("yesterday", re.compile(r"\b(?:yesterday|last night)\b", re.I)),
    ("today", re.compile(r"\b(today|tonight|this morning|this afternoon|this evening)\b", re.I)),
    ("tomorrow", re.compile(r"\btomorrow\b", re.I)),
    ("ago", re.compile(r"\b" + _NUM + r"\s+(day|week|month|year)s?\s+ago\b", re.I)),
    ("in_n", re.compile(r"\bin\s+" + _NUM + r"\s+(day|week|month|year)s?(?!\s+(?:ago|old))\b",
                        re.I)),
    ("for_n", re.compile(r"\bfor\s+(?:about\s+|almost\s+|nearly\s+|over\s+|around\s+|roughly\s+|"
                         r"the\s+(?:last|past)\s+)?" + _NUM + r"\s+(month|year)s?\b", re.I)),
    ("last_unit", re.compile(r"\b(last|next|this)\s+(week|month|year|weekend)\b", re.I)),
    ("season", re.compile(r"\b(last|next|this|in(?:\s+the)?)\s+(spring|summer|autumn|fall|winter)\b",
                          re.I)),
    ("weekday", re.compile(r"(?<!every )(?<!each )(?:\b(last|next|this|on|coming)\s+)?\b" + _WD
                           + r"\b(?!s)", re.I)),
    ("month", re.compile(r"\b(?:(?:in|since|during|last|this|next|early|late|mid|until|by|before)\s+|"
                         r"mid-)" + _MON + r"(?![\w-])(?!\s*\d)", re.I)),
    ("year", re.compile(r"\b(?:in|since|during|from|until|by|before)\s+((?:19|20)\d\d)\b", re.I)),
]

_MONTH_WORD = re.compile(r"\b(?:" + "|".join(sorted(list(MONTHS) + list(_MONTH_ABBR), key=len,
                                                     reverse=True)) + r")\b", re.I)
_DIGIT = re.compile(r"\d")
_SEASON_WORD = re.compile(r"\b(?:spring|summer|autumn|fall|winter)\b", re.I)


def _worth_trying(kind: str, low: str, digit: bool, month: bool) -> bool:
    """A cheap test that a pattern could match at all: most sentences hold no date."""
    if kind in ("iso", "dmy", "mdy", "my", "year", "dm", "md", "nth"):
        return digit and (kind in ("iso", "year", "nth") or month)
    if kind == "yesterday":
        return "yesterday" in low or "last night" in low
    if kind == "today":
        return "today" in low or "tonight" in low or "this " in low
    if kind == "tomorrow":
        return "tomorrow" in low
    if kind == "ago":
        return "ago" in low
    if kind == "in_n":
        return "in " in low and ("day" in low or "week" in low or "month" in low or "year" in low)
    if kind == "for_n":
        return "for " in low and ("month" in low or "year" in low)
    if kind == "last_unit":
        return ("last" in low or "next" in low or "this" in low) and (
            "week" in low or "month" in low or "year" in low)
    if kind == "season":
        return bool(_SEASON_WORD.search(low))
    if kind == "weekday":
        return "day" in low
    if kind == "month":
        return month
    return True


# Tense, from a few marker words: enough to pick the Friday before or the Friday after.
_FUTURE = re.compile(
    r"\b(?:will|shall|gonna|going to|tomorrow|next|upcoming|coming|soon|plan(?:ning|s)? to|"
    r"planned|until|till|by|before|due|need(?:s)? to|have to|has to|must|should|want(?:s)? to|"
    r"hope(?:s)? to|starts?|begins?|remind|remember to|don't forget|todo|booked for|"
    r"(?:agreed|decided|plan|plans|aim|aims|intend|intends|promised|scheduled) to)\b|'ll\b|"
    r"\b(?:is|are|am|'s|'re|'m)\s+(?:\w+ly\s+)?\w+ing\b", re.I)
_PAST_WORDS = frozenset(["was", "were", "did", "had", "got", "went", "saw", "met", "took", "made", "ran", "won", "lost", "bought", "brought", "thought", "told", "said", "found", "gave", "came", "became", "began", "felt", "kept", "left", "meant", "paid", "put", "read", "sent", "set", "sat", "spent", "stood", "taught", "understood", "wrote", "drove", "ate", "drank", "flew", "grew", "knew", "threw", "wore", "chose", "rode", "spoke", "broke", "forgot", "sold", "heard", "held", "built", "fell", "fought", "caught", "slept", "swam", "sang", "led", "lent", "hung", "hit", "hurt", "quit", "shut", "ago", "yesterday", "last"])
_ED = re.compile(r"\b([a-z]{3,}ed)\b", re.I)
_NOT_PAST_ED = frozenset({"need", "feed", "seed", "speed", "bleed", "breed", "proceed", "succeed",
                          "exceed", "shed", "wed", "embed", "bed", "red", "bred", "led", "indeed",
                          "planned", "scheduled", "booked", "supposed", "expected", "allowed",
                          "required", "needed", "interested", "excited", "tired", "married",
                          "engaged", "closed", "based", "called", "named", "used"})
_STATE_BEFORE = re.compile(r"\b(?:is|are|am|be|been|being|get|gets|'s|'re|'m)\s+$", re.I)


def tense_of(text: str) -> Tense | None:
    """'future' when the sentence plans, 'past' when it reports, None when it does not say."""
    if _FUTURE.search(text):
        return "future"
    words = {w.lower() for w in re.findall(r"[A-Za-z']+", text)}
    if words & _PAST_WORDS:
        return "past"
    for m in _ED.finditer(text):
        w = m.group(1).lower()
        if w[:-2] in _NOT_PAST_ED or w in _NOT_PAST_ED:
            continue
        if _STATE_BEFORE.search(text[:m.start()]):
            continue  # "the office is closed": a state, not a past event
        return "past"
    return None


@dataclass(frozen=True)
class DateMention:
    start: int
    end: int
    text: str
    day: date
    precision: str  # day, week, month, year
    role: str = "at"  # at (a point), since (a duration up to now), until (an end)
    kind: str = ""  # which pattern found it
    lead: str = ""  # words of the match kept as written ("until ", "early ")
    season: str = ""

    def render(self, bare: bool = False) -> str:
        """The date in words; `bare` leaves out the leading preposition ("by 1 May 2026")."""
        if self.season:
            out = f"in {self.season} {self.day.year}"
        elif self.precision == "day":
            out = f"on {self.day.day} {self.day.strftime('%B')} {self.day.year}"
        elif self.precision == "week":
            out = f"in the week of {self.day.day} {self.day.strftime('%B')} {self.day.year}"
        elif self.precision == "month":
            out = f"in {self.day.strftime('%B')} {self.day.year}"
        else:
            out = f"in {self.day.year}"
        if bare and (out.startswith("on ") or (out.startswith("in ") and self.precision != "week")):
            out = out[3:]
        return out

    @property
    def iso(self) -> str:
        if self.precision == "year":
            return f"{self.day.year:04d}"
        if self.precision == "month":
            return f"{self.day.year:04d}-{self.day.month:02d}"
        return self.day.isoformat()

    @property
    def relative(self) -> bool:
        """True when the words alone do not say the date (so the fact text should)."""
        return not re.search(r"\b(?:19|20)\d\d\b", self.text)

    def replacement(self, previous_word: str = "") -> str:
        """What the mention becomes in a self-contained fact: "yesterday" → "on 7 May 2023",
        "until Sunday" → "until 8 December 2024", "for ten years" → "for ten years (since
        2015)". Absolute mentions stay as written."""
        if not self.relative:
            return self.text
        if self.kind == "for_n":
            return f"{self.text} (since {self.render(bare=True)})"
        if self.lead:
            return self.lead + self.render(bare=True)
        if previous_word.lower() in _PREPOSITIONS:
            return self.render(bare=True)
        return self.render()


_PREPOSITIONS = frozenset({"on", "by", "before", "until", "till", "after", "from", "since", "to",
                           "through", "for", "of", "in", "at"})
_KEPT_LEADS = frozenset({"since", "during", "early", "late", "mid", "until", "by", "before"})
_ROLE_BEFORE = re.compile(r"\b(since|until|till|through|up to)\s+(?:the\s+)?(?:\w+\s+){0,3}$", re.I)


def find_dates(text: str, at: datetime | None, tense: Tense | str | None = "auto") -> list[DateMention]:
    """Every date the text mentions: absolute ones always, relative ones when `at` is known.

    `tense` picks between the day before and the day after for "on Friday", "in March",
    "October 1"; "auto" reads it from the text.
    """
    if tense == "auto":
        tense = tense_of(text)
    found: list[DateMention] = []
    taken: list[tuple[int, int]] = []
    base = at.date() if at else None
    low = text.lower()
    digit = _DIGIT.search(text) is not None
    month = bool(_MONTH_WORD.search(text))
    for kind, pat in _PATTERNS:
        if not _worth_trying(kind, low, digit, month):
            continue
        for m in pat.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            got = _resolve(kind, m, base, tense)
            if got is None:
                continue
            day, precision = got
            role = "since" if kind == "for_n" else _role(text, m)
            lead = ""
            if kind == "month" and re.match(r"[a-z]*", m.group(0).lower()).group() in _KEPT_LEADS:  # type: ignore[union-attr]
                lead = m.group(0)[: m.start(1) - m.start()]
            season = m.group(2).lower() if kind == "season" else ""
            taken.append((m.start(), m.end()))
            found.append(DateMention(m.start(), m.end(), m.group(0), day, precision, role,
                                     kind, lead, season))
    found.sort(key=lambda x: x.start)
    return found


def _role(text: str, m: re.Match[str]) -> str:
    """'since' or 'until' when the words before the date say so ("since the ski trip in
    February", "until Sunday"), else 'at'."""
    lead = m.group(0).split()[0].lower()
    if lead not in ("since", "until", "till"):
        before = _ROLE_BEFORE.search(text[max(0, m.start() - 40):m.start()])
        lead = before.group(1).lower() if before else ""
    if lead == "since":
        return "since"
    if lead in ("until", "till", "through", "up to"):
        return "until"
    return "at"


def _n(word: str) -> int:
    w = word.lower()
    w = w[2:] if w.startswith("a ") else w
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


def _day_in_year(base: date, month: int, day: int, tense: str | None) -> date:
    """The month/day in the direction the tense points when that is within four months,
    else the nearest one ("agreed to freeze features on April 1", said in March)."""
    this = date(base.year, month, day)
    before = this if this <= base else date(base.year - 1, month, day)
    after = this if this >= base else date(base.year + 1, month, day)
    if tense == "past" and (base - before).days <= 120:
        return before
    if tense == "future" and (after - base).days <= 120:
        return after
    return before if (base - before).days < (after - base).days else after


def _resolve(kind: str, m: re.Match[str], base: date | None,
             tense: str | None) -> tuple[date, str] | None:
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
    try:
        if kind == "dm":
            return _day_in_year(base, _month(g[1]), int(g[0]), tense), "day"
        if kind == "md":
            return _day_in_year(base, _month(g[0]), int(g[1]), tense), "day"
        if kind == "nth":
            day = int(g[0])
            this = base.replace(day=day)
            if tense == "past":
                if this > base:
                    this = _shift(base.replace(day=1), "month", -1).replace(day=day)
            elif this < base:
                this = _shift(base.replace(day=1), "month", 1).replace(day=day)
            return this, "day"
    except (ValueError, KeyError):
        return None
    if kind == "month":
        mo = _month(g[0])
        word = m.group(0).split()[0].lower()
        if word == "last":
            return date(base.year - (mo >= base.month), mo, 1), "month"
        if word == "next":
            return date(base.year + (mo <= base.month), mo, 1), "month"
        year = base.year
        if word == "since" or tense == "past":
            if mo > base.month:
                year -= 1
        elif tense == "future" or word in ("until", "by", "before"):
            if mo < base.month:
                year += 1
        elif mo - base.month > 6:  # no tense: the nearest
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
    if kind in ("ago", "in_n", "for_n"):
        if kind == "for_n" and tense == "future":
            return None  # "staying for two months": a length, not a start
        n = _n(g[0]) * (1 if kind == "in_n" else -1)
        unit = g[1].lower()
        if kind == "for_n":
            return _shift(base, unit, n), unit
        if unit in ("month", "year"):
            return _shift(base, unit, n), unit
        return base + timedelta(days=n * (7 if unit == "week" else 1)), unit
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
    if kind == "season":
        which = g[0].lower().split()[0]
        start = SEASONS[g[1].lower()]
        if which == "this" or (which == "in" and tense != "past"):
            year = base.year if start + 2 >= base.month or which == "this" else base.year + 1
        elif which == "next":
            year = base.year if start > base.month else base.year + 1
        else:  # last, or "in the summer" told in the past tense
            year = base.year if start + 3 <= base.month else base.year - 1
        return date(year, 1, 1), "year"
    if kind == "weekday":
        which = (g[0] or "").lower()
        wd = WEEKDAYS[g[1].lower()]
        ahead = (wd - base.weekday()) % 7
        if which == "next":
            return base + timedelta(days=ahead or 7), "day"
        if which in ("this", "coming"):
            return base + timedelta(days=ahead), "day"
        if which == "last" or tense == "past":
            return base - timedelta(days=(base.weekday() - wd) % 7 or 7), "day"
        # "on Friday" in a plan, a note or a question is the Friday to come.
        return base + timedelta(days=ahead or 7), "day"
    return None
