"""Normalising what sources give: times to ISO-8601 UTC, text to clean unicode."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from cairn.errors import BadInput

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(text: str) -> str:
    """NFC, no control characters, unix newlines, trimmed."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return _CONTROL.sub("", text).strip()


def to_utc_iso(value: object) -> str | None:
    """An ISO-8601 UTC timestamp ('2026-05-08T13:56:00Z') from an ISO string or epoch seconds.

    Naive times are taken as UTC. Unparseable values give None.
    """
    if value is None or value == "":
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            secs = float(value)
            if secs > 1e11:  # milliseconds
                secs /= 1000
            dt = datetime.fromtimestamp(secs, UTC)
        elif isinstance(value, str):
            s = value.strip()
            if s.endswith("Z") or s.endswith("z"):
                s = s[:-1] + "+00:00"
            dt = datetime.fromisoformat(s)
            if dt.tzinfo is None:
                dt = dt.replace(tzinfo=UTC)
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode_text(data: bytes, name: str) -> str:
    """UTF-8 (BOM allowed) or a BadInput naming the first bad byte."""
    if b"\x00" in data[:8192]:
        raise BadInput("binary file (NUL bytes), not text")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise BadInput(
            f"not valid UTF-8 (byte 0x{data[e.start]:02x} at offset {e.start})"
        ) from None
