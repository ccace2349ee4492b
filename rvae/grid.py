"""The time grid every Groove lives on.

Layout
------
A loop is ``bars`` bars of the grid's meter. Each bar holds ``steps_per_bar`` steps:

    steps_per_bar = steps_per_quarter * 4 * numerator / denominator

so at the default 24 steps per quarter (one step per MIDI clock pulse):
4/4 -> 96, 3/4 -> 72, 6/8 -> 72, 12/8 -> 144, 5/4 -> 120, 7/8 -> 84.
24 per quarter holds 16ths (every 6 steps), 8th triplets (8), 16th triplets (4) and
32nd triplets (2) exactly, so straight and swung/compound feels share one grid.

Positions
---------
Positions are measured in quarter notes from MIDI ticks (``tick / ticks_per_quarter``),
never from seconds, so a tempo change inside a file cannot move a note off its step.
A note at quarter position ``q`` lands on step ``round(q * steps_per_quarter)``; what is
left over is its microtiming *offset*, a fraction of half a step in [-1, 1]:

    offset = 2 * (q * steps_per_quarter - step)

Positive means late (the note sounds after its step), negative early. An offset of +1
is exactly halfway to the next step. Reading rounds halfway up, so a note exactly between
two steps goes to the later one with offset -1: read offsets are in [-1, 1).

Two hits of one instrument in one cell (two notes mapping to the same drum class within
one step) keep the louder hit, with its own offset; see ``midi_io``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from rvae.errors import UserError

__all__ = ["Grid", "parse_time_signature"]


def parse_time_signature(text: str) -> tuple[int, int]:
    """'6/8' -> (6, 8). Raises ValueError with a sentence saying what is wrong."""
    try:
        num_s, den_s = text.strip().split("/")
        num, den = int(num_s), int(den_s)
    except ValueError:
        raise UserError(f"time signature {text!r} is not of the form N/D, e.g. 4/4 or 7/8") from None
    if num < 1 or den not in (1, 2, 4, 8, 16, 32):
        raise UserError(f"time signature {text!r}: numerator must be >= 1 and denominator a power of two up to 32")
    return num, den


@dataclass(frozen=True)
class Grid:
    time_signature: tuple[int, int] = (4, 4)
    steps_per_quarter: int = 24
    bars: int = 1  # bars per loop

    def __post_init__(self) -> None:
        num, den = self.time_signature
        object.__setattr__(self, "time_signature", (int(num), int(den)))
        if self.steps_per_quarter < 1 or self.bars < 1:
            raise UserError("steps_per_quarter and bars must be at least 1")
        if self.quarters_per_bar * self.steps_per_quarter % 1:
            raise UserError(
                f"{self.steps_per_quarter} steps per quarter do not divide a bar of "
                f"{self.meter}: choose a multiple of {Fraction(4, den).denominator}"
            )

    @property
    def meter(self) -> str:
        return f"{self.time_signature[0]}/{self.time_signature[1]}"

    @property
    def quarters_per_bar(self) -> Fraction:
        num, den = self.time_signature
        return Fraction(4 * num, den)

    @property
    def steps_per_bar(self) -> int:
        return int(self.quarters_per_bar * self.steps_per_quarter)

    @property
    def steps(self) -> int:
        """Steps in one loop."""
        return self.steps_per_bar * self.bars

    def quantize(self, quarters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Quarter-note positions -> (step index, offset in half steps, positive = late)."""
        return _round_half_up(np.asarray(quarters, dtype=np.float64) * self.steps_per_quarter)

    def quantize_ticks(self, ticks: np.ndarray, ticks_per_quarter: int) -> tuple[np.ndarray, np.ndarray]:
        """``quantize`` for integer MIDI ticks, exactly: one integer product and one division,
        so a note exactly halfway between two steps always goes to the later one (offset -1).
        (``tick / tpq * steps`` rounds twice and can land a hair under the half.)"""
        return _round_half_up(np.asarray(ticks, dtype=np.int64) * self.steps_per_quarter / ticks_per_quarter)

    def position(self, step: np.ndarray, offset: np.ndarray) -> np.ndarray:
        """Inverse of ``quantize``: (step, offset) -> quarter-note position."""
        return (
            np.asarray(step, dtype=np.float64) + 0.5 * np.asarray(offset, dtype=np.float64)
        ) / self.steps_per_quarter

    def to_dict(self) -> dict:
        return {
            "time_signature": list(self.time_signature),
            "steps_per_quarter": self.steps_per_quarter,
            "bars": self.bars,
        }

    @classmethod
    def from_dict(cls, d: dict) -> Grid:
        return cls(tuple(d["time_signature"]), int(d["steps_per_quarter"]), int(d["bars"]))


def _round_half_up(exact: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Fractional steps -> (nearest step, offset); halfway goes to the later step, so offsets
    come out in [-1, 1): -1 is the earliest, and +1 (the same instant) is never produced."""
    step = np.floor(exact + 0.5).astype(np.int64)
    return step, 2.0 * (exact - step)
