"""The Groove: one loop of drum hits on a Grid, for a Kit. The value object of rvae.

Three arrays, each (instruments, steps), float32:
- ``onsets``: 1 where the instrument hits on that step, else 0;
- ``velocities``: MIDI velocity / 127, in [0, 1], 0 where there is no hit;
- ``offsets``: microtiming in half steps, in [-1, 1], positive = late, 0 where there is no hit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from rvae.grid import Grid
from rvae.kit import KITS, Kit

__all__ = ["Groove", "stack"]


@dataclass(frozen=True, eq=False)
class Groove:
    onsets: np.ndarray
    velocities: np.ndarray
    offsets: np.ndarray
    grid: Grid = field(default_factory=Grid)
    kit: Kit = field(default_factory=lambda: KITS["default"])
    bpm: float = 120.0  # the tempo it was played at: puts offsets in milliseconds
    file: str = ""  # the MIDI file it was read from (its path), "" when made here
    bar: int = 0  # the file's bar number (from 1) the loop starts on; 0 when not from a file

    def __post_init__(self) -> None:
        shape = (len(self.kit), self.grid.steps)
        for name in ("onsets", "velocities", "offsets"):
            a = np.asarray(getattr(self, name), dtype=np.float32)
            if a.shape != shape:
                raise ValueError(f"Groove.{name} has shape {a.shape}, expected {shape} (instruments, steps)")
            a.setflags(write=False)  # a Groove handed to another thread must not change under it
            object.__setattr__(self, name, a)

    @classmethod
    def empty(cls, grid: Grid, kit: Kit, bpm: float = 120.0) -> Groove:
        z = np.zeros((len(kit), grid.steps), np.float32)
        return cls(z, z, z, grid, kit, bpm)

    @property
    def source(self) -> str:
        """Where it came from, for reports: "file.mid bar 3"."""
        if not self.file:
            return ""
        return f"{Path(self.file).name} bar {self.bar}" if self.bar else Path(self.file).name

    @property
    def n_onsets(self) -> int:
        return int(self.onsets.sum())

    def hits(self) -> list[tuple[int, int, int, float]]:
        """(step, instrument, MIDI velocity 1..127, offset) for every onset, in time order."""
        inst, step = np.nonzero(self.onsets)
        order = np.lexsort((inst, step))
        vel = np.clip(np.rint(self.velocities[inst, step] * 127), 1, 127).astype(int)
        return [(int(step[i]), int(inst[i]), int(vel[i]), float(self.offsets[inst[i], step[i]])) for i in order]


def stack(grooves: list[Groove]) -> np.ndarray:
    """Grooves -> (N, 3, instruments, steps) float32: onsets, velocities, offsets."""
    return np.stack([np.stack([g.onsets, g.velocities, g.offsets]) for g in grooves]).astype(np.float32)
