"""GB 11643 ID numbers: check digit, validity, masking, keyed digest."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from signaling import id_numbers


def test_check_digit_matches_the_standard_example():
    """The standard's worked example 11010519491231002 has check character X."""
    assert id_numbers.check_digit("11010519491231002") == "X"
    assert id_numbers.is_valid("11010519491231002X")


@pytest.mark.parametrize(
    "number",
    [
        "110105194912310021",  # wrong check digit
        "11010519491231002",  # 17 characters
        "110105194902300020",  # 30 February
        "010105194912310025",  # leading zero
        "11010519491231002x",  # lower-case x (normalize() upper-cases user input)
        "1101051949123100AX",
        "",
    ],
)
def test_invalid_numbers_are_refused(number):
    """Shape, birth date and check digit are all checked."""
    assert not id_numbers.is_valid(number)


def test_future_birth_date_is_refused():
    """A birth date after today cannot be real."""
    first17 = "45020220300101001"
    number = first17 + id_numbers.check_digit(first17)
    assert not id_numbers.is_valid(number, today=dt.date(2026, 11, 25))
    assert id_numbers.is_valid(number, today=dt.date(2031, 1, 1))


def test_mask_keeps_only_the_ends():
    """Masked numbers show four characters at each end."""
    assert id_numbers.mask("11010519491231002X") == "1101**********002X"


def test_digest_is_keyed_and_stable():
    """The same number and key give the same digest; another key gives another."""
    number = "11010519491231002X"
    assert id_numbers.digest(number, b"k1") == id_numbers.digest(number, b"k1")
    assert id_numbers.digest(number, b"k1") != id_numbers.digest(number, b"k2")
    assert number not in id_numbers.digest(number, b"k1")


def test_id_numbers_in_the_docs_pass_their_check_digit():
    """Every 18-character ID number shown in docs/ is valid (a reader copies them)."""
    docs = Path(__file__).parent.parent / "docs"
    found = [
        number
        for page in docs.glob("*.md")
        for number in re.findall(r"(?<![0-9])[1-9][0-9]{16}[0-9X](?![0-9])", page.read_text())
    ]
    assert found
    for number in found:
        assert id_numbers.check_digit(number[:17]) == number[17], number
