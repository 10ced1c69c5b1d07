"""Resident identity card numbers (居民身份证号, GB 11643-1999): check, mask, digest."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import unicodedata

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK_CHARS = "10X98765432"
_SHAPE = re.compile(r"^[1-9][0-9]{16}[0-9X]$")  # ASCII only: \d takes any script's digits


def check_digit(first17: str) -> str:
    total = sum(int(digit) * weight for digit, weight in zip(first17, _WEIGHTS, strict=True))
    return _CHECK_CHARS[total % 11]


def normalize(raw: str) -> str:
    """As typed, to the card's form: full-width characters of a Chinese input method
    become ASCII (NFKC), spaces go, ``x`` becomes ``X``."""
    return unicodedata.normalize("NFKC", raw).strip().replace(" ", "").upper()


def is_valid(number: str, today: dt.date | None = None) -> bool:
    """18 characters, a real birth date not in the future, and the right check digit."""
    if not _SHAPE.match(number):
        return False
    try:
        born = dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    if born > (today or dt.date.today()) or born.year < 1900:
        return False
    return check_digit(number[:17]) == number[17]


def mask(number: str) -> str:
    """Keep the first four and last four characters: ``4502**********123X``."""
    return number[:4] + "*" * (len(number) - 8) + number[-4:]


def digest(number: str, key: bytes) -> str:
    """Keyed digest for exact-match search; the number itself is never stored."""
    return hmac.new(key, number.encode("ascii"), hashlib.sha256).hexdigest()
