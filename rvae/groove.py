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

__all__ = ["Groove", "check_packed", "pack_hits", "stack", "unpack_hits"]


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


def pack_hits(grooves: list[Groove]) -> dict:
    """Grooves -> their hits only, about 8 bytes a hit instead of 12 bytes a cell:

    - ``hits``: (H, 3) int16, each onset's instrument, step and MIDI velocity (1..127), loop
      after loop, each loop's in time order;
    - ``offsets``: (H,) float16, each onset's microtiming (half steps, positive = late);
    - ``counts``: (N,) int32, how many of the hits are each loop's;
    - ``bpm``: (N,) float64; ``bars``: (N,) int32; ``files``: the distinct file paths and
      ``file_index``: (N,) int32 each loop's among them (a file gives many loops).

    ``unpack_hits`` gives the Grooves back; velocities round to whole MIDI velocities."""
    files: dict[str, int] = {}
    rows = [np.zeros((0, 3), np.int16)]
    offsets = [np.zeros(0, np.float16)]
    for g in grooves:
        h = g.hits()  # (step, instrument, velocity, offset), in time order
        rows.append(np.array([(i, s, v) for s, i, v, _ in h], np.int16).reshape(-1, 3))
        offsets.append(np.array([o for *_, o in h], np.float16))
    return {
        "hits": np.concatenate(rows),
        "offsets": np.concatenate(offsets),
        "counts": np.array([g.n_onsets for g in grooves], np.int32),
        "bpm": np.array([g.bpm for g in grooves], np.float64),
        "bars": np.array([g.bar for g in grooves], np.int32),
        "file_index": np.array([files.setdefault(g.file, len(files)) for g in grooves], np.int32),
        "files": list(files),
    }


def check_packed(packed: dict, grid: Grid, kit: Kit) -> None:
    """Raise ValueError unless ``packed`` is a consistent ``pack_hits`` of loops on ``grid`` and ``kit``."""
    hits, counts = np.asarray(packed["hits"]).reshape(-1, 3), np.asarray(packed["counts"])
    n = len(counts)
    if len(hits) != counts.sum() or len(packed["offsets"]) != len(hits) or (counts < 0).any():
        raise ValueError(f"{len(hits)} hits and {len(packed['offsets'])} offsets for counts summing to {counts.sum()}")
    if not len(packed["bpm"]) == len(packed["bars"]) == len(packed["file_index"]) == n:
        raise ValueError(f"bpm, bars and file indices for {n} loops differ in length")
    if n and not 0 <= np.min(packed["file_index"]) <= np.max(packed["file_index"]) < len(packed["files"]):
        raise ValueError(f"a file index outside the {len(packed['files'])} files")
    limits = np.array([len(kit), grid.steps, 128])
    if len(hits) and ((hits < [0, 0, 1]) | (hits >= limits)).any():
        raise ValueError(f"a hit outside {len(kit)} instruments x {grid.steps} steps x velocity 1..127")


def unpack_hits(packed: dict, grid: Grid, kit: Kit) -> list[Groove]:
    """The Grooves of ``pack_hits``, on ``grid`` and ``kit`` (those they were packed from)."""
    check_packed(packed, grid, kit)
    hits = np.asarray(packed["hits"], np.int64).reshape(-1, 3)
    offsets = np.asarray(packed["offsets"], np.float32)
    counts = np.asarray(packed["counts"], np.int64)
    out = []
    for start, n, bpm, bar, f in zip(
        np.cumsum(counts) - counts, counts, packed["bpm"], packed["bars"], packed["file_index"], strict=True
    ):
        inst, step, vel = hits[start : start + n].T
        a = np.zeros((3, len(kit), grid.steps), np.float32)
        a[0, inst, step] = 1
        a[1, inst, step] = vel / 127
        a[2, inst, step] = offsets[start : start + n]
        out.append(Groove(a[0], a[1], a[2], grid, kit, float(bpm), packed["files"][int(f)], int(bar)))
    return out
