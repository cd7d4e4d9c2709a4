"""The Luhn check digit (ISO/IEC 7812-1, mod 10): used by card validation (:mod:`tokenizer.cards`) and by
the log redactor (:mod:`kernel.logging`), which must recognise a card number without knowing card rules."""

from __future__ import annotations


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10, ISO/IEC 7812-1) check over a string of digits; False for empty/non-digit input."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if position % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0
