"""Words in what rvae tells people: a count with its noun in the right number."""

from __future__ import annotations

__all__ = ["counted", "listing"]


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """'1 loop', '3 loops', '0 loops'; ``plural`` where adding s is wrong ('1 bar' / '2 bars')."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {plural or noun + 's'}"


def listing(parts: list[str]) -> str:
    """'a', 'a and b', 'a, b and c'."""
    return ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else "".join(parts)
