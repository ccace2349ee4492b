"""Recording a performance: what was played, as played, and where the cursor went.

``Recording`` is an output (``ports.Output``) like the MIDI port: the clock thread hands it
every message it sends, and it only appends (time, message) to a list. ``save`` writes, atomically, a MIDI
file at the performance's tempo — set or followed, with its changes (``tempo``) — (notes
where they actually left, clock messages dropped)
and, beside it, ``NAME.cursor.csv``: time, beat, z and the instruments' densities
(``density1``... as keys 1-9 count, 0 = the model's own) at every move of either, so that a
performance can be reviewed and replayed (``rvae generate --z`` at any row).
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

import mido

from rvae.files import write_atomic

__all__ = ["Recording"]

SKIP = {"clock", "start", "stop", "continue", "songpos"}


class Recording:
    lead = 0.0  # it notes when each message left
    lost = False

    def __init__(
        self,
        path: str | Path,
        bpm: float,
        time_signature: tuple[int, int],
        now=time.perf_counter,
        instruments: int = 0,
    ) -> None:
        self.path = Path(path)
        self.instruments = instruments  # density columns in the cursor file
        self.bpm, self.time_signature, self.now = bpm, time_signature, now
        self.t0: float | None = None
        self.events: list[tuple[float, mido.Message]] = []
        self.cursor: list[tuple[float, float, tuple[float, ...], tuple[float, ...]]] = []  # (time, beat, z, density)
        self.tempi: list[tuple[float, float]] = []  # (time, bpm) where the tempo moved

    def send(self, msg: mido.Message) -> None:
        """Called from the clock thread: one append, no I/O."""
        if msg.type in SKIP:
            return
        t = self.now()
        if self.t0 is None:
            self.t0 = t
        self.events.append((t, msg))

    def panic(self) -> None:
        """Nothing sounds in a file: the note-offs the Player sends before a panic are recorded."""

    def close(self) -> None:
        """Nothing to release: ``save`` writes the files."""

    def move(self, z: tuple[float, ...], beat: float, density: tuple[float, ...] = ()) -> None:
        """Where the cursor is and each instrument's density (missing = 0): a row if either moved."""
        t = self.now()
        if self.t0 is None:
            self.t0 = t
        d = (tuple(density) + (0.0,) * self.instruments)[: self.instruments]
        if not self.cursor or self.cursor[-1][2:] != (tuple(z), d):
            self.cursor.append((t, beat, tuple(z), d))

    def tempo(self, bpm: float) -> None:
        """The clock's tempo now (the app passes it as the cursor's); a followed clock's
        estimate wobbles by tenths of a BPM, so only moves of half a BPM are kept."""
        if not self.tempi or abs(self.tempi[-1][1] - bpm) >= 0.5:
            self.tempi.append((self.now(), bpm))

    def save(self, ticks_per_quarter: int = 480) -> tuple[Path, Path]:
        t0 = self.t0 or 0.0
        num, den = self.time_signature
        before = [b for t, b in self.tempi if t <= t0]  # the tempo in force when the first message left
        first = before[-1] if before else (self.tempi[0][1] if self.tempi else self.bpm)
        track = mido.MidiTrack(
            [
                mido.MetaMessage("track_name", name="rvae performance", time=0),
                mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(first), time=0),
                mido.MetaMessage("time_signature", numerator=num, denominator=den, time=0),
            ]
        )
        # seconds -> ticks through the tempo in force: (since, tick there, bpm) per segment
        seg_t, seg_tick, bpm = t0, 0.0, first
        changes = [(t, b) for t, b in self.tempi[1:] if t > t0]
        timeline = sorted([(t, 0, b) for t, b in changes] + [(t, 1, m) for t, m in self.events], key=lambda x: x[:2])
        now = 0
        for t, kind, what in timeline:
            tick = max(now, round(seg_tick + (t - seg_t) * bpm / 60.0 * ticks_per_quarter))
            if kind == 0:
                seg_t, seg_tick, bpm = t, seg_tick + (t - seg_t) * bpm / 60.0 * ticks_per_quarter, what
                track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(what), time=tick - now))
            else:
                track.append(what.copy(time=tick - now))
            now = tick
        mid = mido.MidiFile(type=0, ticks_per_beat=ticks_per_quarter, tracks=[track])
        write_atomic(self.path, mid.save)
        side = self.path.with_suffix(".cursor.csv")

        def write_csv(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                zs = range(len(self.cursor[0][2]) if self.cursor else 2)
                w.writerow(
                    ["seconds", "beat", *(f"z{i}" for i in zs), *(f"density{i + 1}" for i in range(self.instruments))]
                )
                for t, beat, z, d in self.cursor:
                    w.writerow([f"{t - t0:.4f}", f"{beat:.4f}", *(f"{v:.4f}" for v in (*z, *d))])

        write_atomic(side, write_csv)
        return self.path, side
