"""Token entry buffer of the CIU keypad: digits, backspace, clear, and the 4-digit grouping of STS tokens."""

from __future__ import annotations

TOKEN_DIGITS = 20
GROUP = 4


def group_digits(digits: str, group: int = GROUP) -> str:
    """``"12345678"`` -> ``"1234 5678"``: STS tokens are read and typed in groups of four."""
    return " ".join(digits[i : i + group] for i in range(0, len(digits), group))


class TokenEntry:
    """What the customer has typed so far (at most 20 digits)."""

    def __init__(self, max_digits: int = TOKEN_DIGITS) -> None:
        self._digits: list[str] = []
        self._max = max_digits

    @property
    def digits(self) -> str:
        return "".join(self._digits)

    @property
    def full(self) -> bool:
        return len(self._digits) >= self._max

    def add(self, digit: str) -> bool:
        """Append one digit; False (ignored) when the buffer is full or ``digit`` is not 0-9."""
        if len(digit) != 1 or not digit.isdigit() or self.full:
            return False
        self._digits.append(digit)
        return True

    def backspace(self) -> None:
        if self._digits:
            self._digits.pop()

    def clear(self) -> None:
        self._digits.clear()

    def grouped(self) -> str:
        return group_digits(self.digits)

    def __len__(self) -> int:
        return len(self._digits)
