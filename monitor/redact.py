"""Personal-data redaction: e-mails, phones, payment cards, US social security numbers, IP addresses and secrets
become typed placeholders.

Runs on every message before anything is stored (``ingest.redact_pii``, on by default) and on the raw text of
quarantined records. Each detector is guarded by a cheap substring test so the common case, a message with no
candidate at all, costs a few ``in`` checks rather than a regex scan per pattern. Placeholders are typed so a
reader still sees what was there: ``write to [EMAIL] or call [PHONE]``.
"""
from __future__ import annotations

import ipaddress
import re

PLACEHOLDERS = {
    "email": "[EMAIL]",
    "phone": "[PHONE]",
    "card": "[CARD]",
    "ssn": "[SSN]",
    "ip": "[IP]",
    "api_key": "[API_KEY]",
    "token": "[TOKEN]",
}

# Secrets first: a JWT or key may contain digit runs that would otherwise look like a phone number.
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{12,}")
_KEYS = re.compile(
    r"\b(?:sk-(?:proj-|ant-)?[A-Za-z0-9_-]{16,}"  # OpenAI / Anthropic style
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{40,}"
    r"|xox[baprs]-[A-Za-z0-9-]{10,}"  # Slack
    r"|AIza[0-9A-Za-z_-]{35})"  # Google API key
)
# A match starts only where a run of local-part characters starts: without the look-behind, a long run of letters
# after an "@" (an inline base64 image) was retried from each of its positions, quadratic in its length.
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# One scan for every digit-based candidate: IPv4 addresses, then runs of 7+ digits with single separators (card
# and phone candidates, validated in `_digits`). Python's `re` pays per alternative per position, so the
# digit-free majority of messages skips this scan entirely.
_DIGITS = re.compile(
    r"(?<![\w.])(?P<ip>(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))(?![\w.]*\d)"
    r"|(?<![\w.+])(?P<num>\+?\(?\d(?:[ .()-]{0,2}\d){6,18})(?!\w)"
)
# A US social security number as written, 3-2-4 digits with dashes or spaces, in the ranges ever issued: area
# 001-899 but not 666, group 01-99, serial 0001-9999. (A bare run of nine digits is left alone, like other numbers.)
_SSN = re.compile(r"(?!000|666|9\d\d)\d{3}([- ])(?!00)\d{2}\1(?!0000)\d{4}")
_IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])")
# Cheap gate: any 7+ character run of digits and separators (both an IPv4 address and a phone need one).
_DIGIT_GATE = re.compile(r"\d[\d .()-]{5,}\d")


def luhn_ok(digits: str) -> bool:
    """True when a string of digits passes the Luhn checksum used by payment cards."""
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


def _digits(m: re.Match, counts: dict[str, int]) -> str:
    if m.group("ip"):
        counts["ip"] = counts.get("ip", 0) + 1
        return PLACEHOLDERS["ip"]
    text = m.group("num")
    digits = re.sub(r"\D", "", text)
    n = len(digits)
    if 13 <= n <= 19 and not text.startswith("+") and luhn_ok(digits):
        counts["card"] = counts.get("card", 0) + 1
        return PLACEHOLDERS["card"]
    if n == 9 and _SSN.fullmatch(text):
        counts["ssn"] = counts.get("ssn", 0) + 1
        return PLACEHOLDERS["ssn"]
    # A phone number: international (+...), or 10-15 digits grouped with separators, or a (555) area code.
    # Bare runs of digits without separators (order numbers, years) are left alone.
    grouped = any(c in text for c in " .-()")
    if (text.startswith("+") and 8 <= n <= 15) or (grouped and 10 <= n <= 13 and _phone_shape(text)):
        counts["phone"] = counts.get("phone", 0) + 1
        return PLACEHOLDERS["phone"]
    return text


def _phone_shape(text: str) -> bool:
    # Dates and versions ("2024-05-01 12", "1.2.3") have short groups; phones have a group of 3+ and 4.
    groups = [g for g in re.split(r"[ .()-]+", text) if g]
    return 2 <= len(groups) <= 5 and max(len(g) for g in groups) >= 3 and len(groups[-1]) >= 3


def redact(text: str) -> tuple[str, dict[str, int]]:
    """Replace personal data and secrets in `text` with typed placeholders; return the text and counts by type."""
    counts: dict[str, int] = {}
    if not text:
        return text, counts

    def sub(pattern: re.Pattern, kind: str, s: str, repl: str | None = None) -> str:
        new, n = pattern.subn(repl or PLACEHOLDERS[kind], s)
        if n:
            counts[kind] = counts.get(kind, 0) + n
        return new

    if "eyJ" in text:
        text = sub(_JWT, "token", text)
    if "earer" in text or "EARER" in text:
        text = sub(_BEARER, "token", text, r"\1 [TOKEN]")
    if _maybe_key(text):
        text = sub(_KEYS, "api_key", text)
    if "@" in text:
        text = sub(_EMAIL, "email", text)
    if ":" in text and text.count(":") >= 2:
        text = _IPV6.sub(lambda m: _ipv6(m, counts), text)
    # Plain ASCII text without a digit cannot hold a digit run: skip the regex scan (Python's \d is Unicode, so
    # other text always gets it).
    if (not text.isascii() or _has_ascii_digit(text)) and _DIGIT_GATE.search(text):
        text = _DIGITS.sub(lambda m: _digits(m, counts), text)
    return text, counts


def _maybe_key(text: str) -> bool:
    # Every alternative of _KEYS contains one of these literals, each checked behind a one-character test that
    # is usually false; the cheap tests decide the common case in a few substring scans.
    return (("-" in text and ("sk-" in text or "xox" in text))
            or ("_" in text and ("hp_" in text or "ho_" in text or "hu_" in text or "hs_" in text
                                 or "hr_" in text or "github_pat_" in text))
            or ("A" in text and ("AKIA" in text or "ASIA" in text or "AIza" in text)))


def _has_ascii_digit(text: str) -> bool:
    return ("0" in text or "1" in text or "2" in text or "3" in text or "4" in text or "5" in text or "6" in text
            or "7" in text or "8" in text or "9" in text)


def _ipv6(m: re.Match, counts: dict[str, int]) -> str:
    s = m.group(0)
    if sum(c != ":" for c in s) < 3:  # "::" or "a::b" is too thin to be a real address in prose
        return s
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return s
    counts["ip"] = counts.get("ip", 0) + 1
    return PLACEHOLDERS["ip"]


def merge_counts(into: dict[str, int], more: dict[str, int]) -> dict[str, int]:
    for k, v in more.items():
        into[k] = into.get(k, 0) + v
    return into
