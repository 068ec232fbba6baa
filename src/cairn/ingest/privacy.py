"""The privacy filter: secrets are redacted before anything is stored, and instruction-shaped
content is flagged for quarantine (DESIGN section 4)."""

from __future__ import annotations

import re

# (name, pattern); the whole match (or group "s" when present) is replaced.
_SECRET_PATTERNS: list[tuple[str, re.Pattern[str]]] = [
    ("private_key", re.compile(
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)")),
    ("aws_key", re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("github_token", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})\b")),
    ("api_key", re.compile(r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}\b")),
    ("stripe_key", re.compile(r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b")),
    ("slack_token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}\b")),
    ("google_key", re.compile(r"\bAIza[0-9A-Za-z_\-]{35}\b")),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\b")),
    ("bearer", re.compile(r"(?i)\bbearer\s+(?P<s>[A-Za-z0-9._~+/=-]{16,})")),
    ("password", re.compile(
        r"(?i)\b(?:password|passwd|pwd|passphrase|pin code|secret|api[_ -]?key|access[_ -]?token"
        r"|auth[_ -]?token|client[_ -]?secret)\b(?:\s+is|\s*[:=])\s*['\"]?(?P<s>[^\s'\"]{4,})")),
    ("url_credentials", re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s:/@]+:(?P<s>[^\s@/]+)@")),
]
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")


def _luhn_ok(digits: str) -> bool:
    total, alt = 0, False
    for ch in reversed(digits):
        d = ord(ch) - 48
        if alt:
            d *= 2
            if d > 9:
                d -= 9
        total += d
        alt = not alt
    return total % 10 == 0


def redact(text: str) -> tuple[str, int]:
    """Replace secrets with [REDACTED:kind]; returns the text and how many were replaced."""
    count = 0
    for name, pat in _SECRET_PATTERNS:
        def sub(m: re.Match[str], name: str = name) -> str:
            nonlocal count
            count += 1
            if "s" in (m.groupdict() or {}) and m.group("s"):
                start, end = m.span("s")
                whole = m.group(0)
                off = m.start(0)
                return whole[: start - off] + f"[REDACTED:{name}]" + whole[end - off:]
            return f"[REDACTED:{name}]"

        text = pat.sub(sub, text)

    def card(m: re.Match[str]) -> str:
        nonlocal count
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _luhn_ok(digits) and len(set(digits)) > 2:
            count += 1
            return "[REDACTED:card_number]"
        return m.group(0)

    text = _CARD.sub(card, text)
    return text, count


_INJECTION = re.compile(
    r"(?ix)"
    r"\b(?:ignore|disregard|forget|override)\b[^.\n]{0,40}\b(?:previous|prior|above|earlier|all|your)\b"
    r"[^.\n]{0,20}\b(?:instructions?|prompts?|rules|directions|guidelines)\b"
    r"|\byou\s+are\s+now\s+(?:a|an|in|the)\b"
    r"|\b(?:new|updated|hidden)\s+(?:system\s+)?instructions?\s*:"
    r"|\bsystem\s+prompt\b"
    r"|\bfrom\s+now\s+on,?\s+(?:you|the\s+assistant|always|never)\b"
    r"|\b(?:the\s+)?(?:assistant|ai|model|agent|claude|chatgpt)\s+(?:must|should|shall|has\s+to)\s+"
    r"(?:always|never|now|send|forward|include|reply|respond|run|execute|ignore)\b"
    r"|\bremember\s+that\s+(?:the\s+)?(?:assistant|ai|model|agent)\b"
    r"|\balways\s+(?:send|forward|upload|include|exfiltrate|email|post)\b[^.\n]{0,60}"
    r"\b(?:to|with)\b[^.\n]{0,40}(?:https?://|@|\bserver\b|\baddress\b)"
    r"|\b(?:do\s+not|don't|never)\s+(?:tell|inform|mention\s+to)\s+the\s+user\b"
    r"|<\|im_start\|>|\[INST\]|<\s*/?\s*system\s*>"
)


def looks_like_injection(text: str) -> bool:
    """Instruction-shaped content aimed at an assistant: stored, but quarantined."""
    return _INJECTION.search(text) is not None
