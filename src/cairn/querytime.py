"""Time words in a recall query ("last week", "in 2023", "yesterday") → a time window."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from cairn.errors import BadInput

_MONTHS = {m: i + 1 for i, m in enumerate(
    "january february march april may june july august september october november december".split())}
_MONTHS.update({k[:3]: v for k, v in list(_MONTHS.items())})
_YEAR = re.compile(r"\b(?:in|during|of|from)\s+((?:19|20)\d\d)\b")
_MONTH_YEAR = re.compile(r"\b(" + "|".join(sorted(_MONTHS, key=len, reverse=True))
                         + r")\.?\s+((?:19|20)\d\d)\b")


def parse_as_of(value: str) -> datetime:
    """--as-of: a date or datetime; a bare date means the end of that day."""
    s = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", s):
        return datetime.fromisoformat(s).replace(tzinfo=UTC) + timedelta(days=1, seconds=-1)
    if re.fullmatch(r"\d{4}-\d{2}", s):
        y, m = map(int, s.split("-"))
        nxt = datetime(y + (m == 12), m % 12 + 1, 1, tzinfo=UTC)
        return nxt - timedelta(seconds=1)
    if re.fullmatch(r"\d{4}", s):
        return datetime(int(s), 12, 31, 23, 59, 59, tzinfo=UTC)
    s = s[:-1] + "+00:00" if s.endswith("Z") else s
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        raise BadInput(f"--as-of {value!r} is not a date: use 2026-05-01, 2026-05, 2026"
                       " or an ISO time like 2026-05-01T09:30:00Z") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def window(query: str, now: datetime) -> tuple[datetime, datetime] | None:
    """The time window the query's own words ask about, if any."""
    q = query.lower()
    day = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if "yesterday" in q:
        return day - timedelta(days=1), day
    if re.search(r"\btoday\b", q):
        return day, day + timedelta(days=1)
    if "last week" in q or "past week" in q:
        return day - timedelta(days=7 + day.weekday()), day - timedelta(days=day.weekday())
    if "this week" in q:
        return day - timedelta(days=day.weekday()), day + timedelta(days=1)
    if "last month" in q or "past month" in q:
        first = day.replace(day=1)
        prev = (first - timedelta(days=1)).replace(day=1)
        return prev, first
    if "this month" in q:
        return day.replace(day=1), day + timedelta(days=1)
    if "last year" in q:
        return datetime(day.year - 1, 1, 1, tzinfo=UTC), datetime(day.year, 1, 1, tzinfo=UTC)
    if m := _MONTH_YEAR.search(q):
        y, mo = int(m.group(2)), _MONTHS[m.group(1)]
        return (datetime(y, mo, 1, tzinfo=UTC),
                datetime(y + (mo == 12), mo % 12 + 1, 1, tzinfo=UTC))
    if m := _YEAR.search(q):
        y = int(m.group(1))
        return datetime(y, 1, 1, tzinfo=UTC), datetime(y + 1, 1, 1, tzinfo=UTC)
    return None
