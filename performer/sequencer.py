"""The pure sequencer core: which notes fall in a window of beats.

Positions are in beats (quarter notes) from the start of playback; a Pattern's loop
repeats forever. The core knows no threads, clocks or MIDI: the clock thread asks it for
the window just ahead and turns what it returns into deadlines.

A hit belongs to a grid step; its microtiming moves it up to half a step early or late.
So the events sounding in beats [b0, b1) come from grid steps up to half a step outside
that window, and an early hit of the next loop's first step sounds before the loop ends.

Swaps: a new pattern takes over at the next step, beat or bar boundary that no earlier
query has looked at, so every grid step is played from exactly one pattern.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field

import numpy as np

from rvae.grid import Grid
from rvae.groove import Groove

__all__ = ["SWAP_MODES", "Event", "Mailbox", "Pattern", "PlayerView", "Sequencer", "bar_beat", "make_pattern"]

SWAP_MODES = ("tick", "beat", "bar")


@dataclass(frozen=True)
class Event:
    beat: float  # when it sounds, beats from the start of playback
    note: int
    velocity: int
    instrument: int


@dataclass(frozen=True, eq=False)
class Pattern:
    """An immutable loop of note events, ready to play: mutes, velocity mode and
    microtiming already applied. Arrays are (E,), sorted by step."""

    grid: Grid
    steps: np.ndarray  # int, grid step in the loop
    offsets: np.ndarray  # float, in steps (-0.5..0.5), positive = late
    notes: np.ndarray  # int, MIDI note
    velocities: np.ndarray  # int, 1..127
    instruments: np.ndarray  # int, kit class
    groove: Groove | None = None  # what was decoded (before mutes), for the display
    z: tuple[float, ...] = ()
    serial: int = 0  # increases with every new pattern, so observers can tell them apart

    @property
    def loop_beats(self) -> float:
        return self.grid.steps / self.grid.steps_per_quarter


def make_pattern(
    groove: Groove,
    mutes: frozenset[int] = frozenset(),
    velocity: int | None = None,
    microtiming: float = 1.0,
    z: tuple[float, ...] = (),
    serial: int = 0,
) -> Pattern:
    """A Groove -> a Pattern. ``velocity``: a fixed velocity, or None for the decoded ones;
    ``microtiming``: 0 = exactly on the grid, 1 = as decoded."""
    hits = [h for h in groove.hits() if h[1] not in mutes]  # (step, instrument, velocity, offset)
    steps = np.array([h[0] for h in hits], dtype=np.int64)
    inst = np.array([h[1] for h in hits], dtype=np.int64)
    vel = np.array([velocity or h[2] for h in hits], dtype=np.int64)
    off = np.clip(np.array([h[3] for h in hits], dtype=np.float64) * 0.5 * microtiming, -0.5, 0.4999)
    notes = np.array([groove.kit.out_notes[i] for i in inst], dtype=np.int64)
    for a in (steps, off, notes, vel, inst):
        a.setflags(write=False)
    return Pattern(groove.grid, steps, off, notes, vel, inst, groove, tuple(z), serial)


class Mailbox:
    """A one-slot mailbox: the writer replaces, the reader takes the newest. Never blocks
    for longer than a pointer swap, so the clock thread can take from it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item = None

    def put(self, item) -> None:
        with self._lock:
            self._item = item

    def take(self):
        with self._lock:
            item, self._item = self._item, None
        return item


@dataclass
class _Segment:
    start: float  # grid position (beats) from which this pattern plays
    pattern: Pattern


@dataclass
class Sequencer:
    """Owned by the clock thread. ``offer`` a new pattern; ``events(b0, b1)`` for windows
    that move forward; ``locate`` after Start, Stop or Song Position."""

    pattern: Pattern | None = None
    swap: str = "bar"
    _segments: list[_Segment] = field(default_factory=list)
    _decided: float = 0.0  # grid positions before this have a pattern fixed
    _pending: Pattern | None = None
    _floor: float = -math.inf  # the last locate: grid positions before it never play

    def __post_init__(self) -> None:
        if self.swap not in SWAP_MODES:
            raise ValueError(f"swap mode {self.swap!r} is not one of {', '.join(SWAP_MODES)}")
        if self.pattern is not None:
            self._segments = [_Segment(-math.inf, self.pattern)]

    def offer(self, pattern: Pattern) -> None:
        """A new pattern; it takes over at the next free boundary of the swap mode."""
        if not self._segments:
            self._segments = [_Segment(self._floor, pattern)]
            self.pattern = pattern
        else:
            self._pending = pattern

    def locate(self, beat: float) -> None:
        """Jump: nothing before ``beat`` has been looked at; a pending pattern starts now.
        Grid positions before ``beat`` never play; those at or after it do, early hits too:
        ask from before ``beat`` (``events(beat - 1, ...)``) to hear a first kick played early."""
        current = self._pending or (self._segments[-1].pattern if self._segments else self.pattern)
        self._pending = None
        self._floor = beat
        self._segments = [_Segment(beat, current)] if current is not None else []
        self.pattern = current
        self._decided = beat

    def _boundary(self, pattern: Pattern, after: float) -> float:
        g = pattern.grid
        unit = {"tick": 1 / g.steps_per_quarter, "beat": 1.0, "bar": float(g.quarters_per_bar)}[self.swap]
        return math.ceil(after / unit - 1e-9) * unit

    def events(self, b0: float, b1: float) -> list[Event]:
        """Events sounding in beats [b0, b1), in time order."""
        if not self._segments:
            return []
        spq = self._segments[-1].pattern.grid.steps_per_quarter
        reach = b1 + 0.5 / spq  # the last grid position whose early hits can sound before b1
        if self._pending is not None:
            start = self._boundary(self._segments[-1].pattern, self._decided)
            self._segments.append(_Segment(start, self._pending))
            self.pattern, self._pending = self._pending, None
        self._decided = max(self._decided, reach)
        out: list[Event] = []
        for k, seg in enumerate(self._segments):
            end = self._segments[k + 1].start if k + 1 < len(self._segments) else math.inf
            out += _pattern_events(seg.pattern, b0, b1, max(seg.start, b0 - 1.0), min(end, reach))
        # segments wholly behind the window are finished
        while len(self._segments) > 1 and self._segments[1].start <= b0 - 1.0:
            self._segments.pop(0)
        out.sort(key=lambda e: (e.beat, e.note))
        return out


def _pattern_events(p: Pattern, b0: float, b1: float, g0: float, g1: float) -> list[Event]:
    """Events of pattern p sounding in [b0, b1) whose grid position is in [g0, g1)."""
    if len(p.steps) == 0 or g1 <= g0:
        return []
    spq = p.grid.steps_per_quarter
    loop = p.loop_beats
    out = []
    for n in range(math.floor((g0 - 1) / loop), math.floor(g1 / loop) + 1):
        grid_pos = n * loop + p.steps / spq  # (E,)
        when = grid_pos + p.offsets / spq
        sel = np.nonzero((grid_pos >= g0) & (grid_pos < g1) & (when >= b0) & (when < b1))[0]
        out += [Event(float(when[i]), int(p.notes[i]), int(p.velocities[i]), int(p.instruments[i])) for i in sel]
    return out


@dataclass(frozen=True)
class PlayerView:
    """What the clock thread shows the world, replaced whole on every tick: the window and
    the headless printer read it without locks."""

    beat: float = 0.0  # playhead, beats from the start of playback
    bpm: float = 120.0  # internal tempo, or the estimate from incoming clock
    clock: str = "internal"  # "internal" or "midi"
    state: str = "stopped"  # "playing", "stopped", "waiting for clock"
    ports: str = ""  # e.g. "out: rvae (JACK)  in: —"
    pattern: Pattern | None = None  # the pattern playing now
    late_events: int = 0  # events sent after their deadline, counted
    missed_ticks: int = 0


def bar_beat(beat: float, grid: Grid) -> tuple[int, int]:
    """Playhead in beats -> (bar, unit in the bar), both 1-based; the unit is the time
    signature's (quarters in 4/4, eighths in 6/8 and 7/8)."""
    qpb = float(grid.quarters_per_bar)
    unit = 4 / grid.time_signature[1]
    bar = math.floor(beat / qpb + 1e-9)
    in_bar = max(0.0, beat - bar * qpb)
    return bar + 1, min(grid.time_signature[0], math.floor(in_bar / unit + 1e-9) + 1)
