"""Reading drum MIDI files into Grooves and writing Grooves back as MIDI files.

Reading uses symusic (a C++ MIDI parser, ~100x faster than pure-Python parsing, which is
what lets a thousand files ingest in a second); writing uses mido.

Which notes are drums: notes on MIDI channel 10. A file with nothing on channel 10 is read
whole, since DAW clips are often exported on channel 1; the Kit then decides what is a drum.

Bars: from the file's time-signature events (4/4 until the first one, as MIDI specifies),
each meter section starting its bars where its event stands. ``read_midi(..., force=True)``
ignores the events and lays the grid's meter from tick 0, as does a file with no
time-signature event at all (common in DAW clips).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np
import symusic

from rvae.errors import UserError
from rvae.grid import Grid
from rvae.groove import Groove
from rvae.kit import Kit

__all__ = ["MidiFileLoops", "MidiReadError", "file_meter", "read_midi", "write_atomic", "write_midi"]

DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0


class MidiReadError(UserError):
    """A file that cannot give any loop; the message is the reason, in words."""


@dataclass
class MidiFileLoops:
    path: Path
    loops: list[Groove] = field(default_factory=list)
    meters: list[str] = field(default_factory=list)  # every meter the file uses
    bpm: float = 120.0
    notes: int = 0
    unmapped: int = 0  # notes no kit class reads
    bars_other_meter: int = 0  # bars skipped because their meter is not the grid's


def _parse(path: Path) -> symusic.Score:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MidiReadError(f"cannot be read ({e.strerror or e})") from None
    if not data:
        raise MidiReadError("is empty")
    if not data.startswith(b"MThd"):
        raise MidiReadError("is not a MIDI file (it does not start with 'MThd')")
    try:
        return symusic.Score.from_midi(data, ttype="tick")
    except Exception as e:  # symusic raises RuntimeError for every parse failure
        reason = str(e).removeprefix("MiniMidi: ").removesuffix(": iostream error")
        raise MidiReadError(f"is corrupt or truncated ({reason})") from None


def _notes(score: symusic.Score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tick, pitch, velocity) of the drum notes, sorted by tick."""
    tracks = [t for t in score.tracks if len(t.notes)]
    drums = [t for t in tracks if t.is_drum]
    arrays = [t.notes.numpy() for t in (drums or tracks)]
    if not arrays:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    tick = np.concatenate([a["time"] for a in arrays]).astype(np.int64)
    pitch = np.concatenate([a["pitch"] for a in arrays]).astype(np.int64)
    vel = np.concatenate([a["velocity"] for a in arrays]).astype(np.int64)
    keep = vel > 0
    order = np.argsort(tick[keep], kind="stable")
    return tick[keep][order], pitch[keep][order], vel[keep][order]


def _meter_sections(
    score: symusic.Score, end_tick: int, force: tuple[int, int] | None
) -> list[tuple[int, int, tuple[int, int]]]:
    """[(start_tick, end_tick, (num, den))] covering [0, end_tick)."""
    if force is not None:
        return [(0, end_tick, force)]
    events: dict[int, tuple[int, int]] = {0: (4, 4)}
    for ts in score.time_signatures:
        if ts.numerator >= 1 and ts.denominator >= 1:
            events[int(ts.time)] = (int(ts.numerator), int(ts.denominator))  # the last event at a tick wins
    starts = sorted(t for t in events if t < end_tick)
    bounds = [*starts[1:], end_tick]
    return [(s, e, events[s]) for s, e in zip(starts, bounds, strict=True) if e > s]


def file_meter(path: str | Path) -> str | None:
    """The meter of a file's first time-signature event ("6/8"), None if it states none."""
    ts = list(_parse(Path(path)).time_signatures)
    if not ts:
        return None
    first = min(t.time for t in ts)
    t = [t for t in ts if t.time == first][-1]  # as read_midi does: of two events at one tick, the last wins
    return f"{t.numerator}/{t.denominator}"


def read_midi(path: str | Path, grid: Grid, kit: Kit, force: bool = False) -> MidiFileLoops:
    """Every loop of ``grid.bars`` bars of the grid's meter in the file, as Grooves.

    Raises MidiReadError when the file gives none: unreadable, not MIDI, corrupt, no drum
    notes, or no bar in the grid's meter (unless ``force``).
    """
    path = Path(path)
    score = _parse(path)
    tpq = score.ticks_per_quarter
    if tpq <= 0:
        raise MidiReadError("uses SMPTE time division, which has no beats to put on a grid")
    tick, pitch, vel = _notes(score)
    if len(tick) == 0:
        raise MidiReadError("has no notes")
    cls = kit.lookup()[np.clip(pitch, 0, 127)]
    mapped = cls >= 0
    result = MidiFileLoops(path, notes=len(tick), unmapped=int((~mapped).sum()))
    if not mapped.any():
        raise MidiReadError(f"has no drum notes that kit {kit.name!r} reads ({len(tick)} notes, none mapped)")
    tempos = score.tempos
    result.bpm = float(tempos[0].qpm) if len(tempos) else 120.0
    tick, cls, vel = tick[mapped], cls[mapped], vel[mapped]

    half_step = 0.5 / grid.steps_per_quarter  # a note this early belongs to the next step, maybe the next loop
    force = force or len(score.time_signatures) == 0  # no meter stated: read it in the grid's
    # The last bar is the one the last note quantizes into: a downbeat played a hair early
    # must not open a bar the file does not have.
    end_tick = max(1, int(np.floor(tick.max() - half_step * tpq)) + 1)
    sections = _meter_sections(score, end_tick, grid.time_signature if force else None)
    result.meters = sorted({f"{n}/{d}" for _, _, (n, d) in sections})
    bars_before = 0  # bars of the file before this section: loops are named by the file's bar numbers
    for start, end, meter in sections:
        bar_q = 4 * meter[0] / meter[1]
        n_bars = int(np.ceil((end - start) / tpq / bar_q - 1e-9))
        first_bar, bars_before = bars_before + 1, bars_before + n_bars
        if meter != grid.time_signature:
            result.bars_other_meter += n_bars
            continue
        # Each note is quantized once, from the section start, and its step picks its loop.
        # (Cutting loop by loop with float bounds put a note exactly half a step before a bar
        # line into the next loop at step -1, and _loop clipped it to step 0: a step late.)
        step, offset = grid.quantize_ticks(tick - start, tpq)  # steps never decrease: ticks are sorted
        n_loops = n_bars // grid.bars
        bounds = np.searchsorted(step, np.arange(n_loops + 1) * grid.steps)
        for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            result.loops.append(
                _loop(
                    step[lo:hi] - k * grid.steps,
                    offset[lo:hi],
                    cls[lo:hi],
                    vel[lo:hi],
                    grid,
                    kit,
                    result.bpm,
                    str(path),
                    first_bar + k * grid.bars,
                )
            )
    if not result.loops:
        if grid.meter not in result.meters:
            raise MidiReadError(
                f"is in {', '.join(result.meters)}, not the model's {grid.meter} "
                f"(--force-meter reads it as {grid.meter})"
            )
        # Only a loop of several bars can be longer than every stretch of the grid's meter.
        raise MidiReadError(f"has no {grid.bars} bars of {grid.meter} in a row to make a loop")
    return result


def _loop(step, offset, cls, vel, grid: Grid, kit: Kit, bpm: float, file: str, bar: int) -> Groove:
    shape = (len(kit), grid.steps)
    onsets, velocities, offsets = (np.zeros(shape, np.float32) for _ in range(3))
    step = np.clip(step, 0, grid.steps - 1)
    # Two hits of one class in one cell: keep the loudest (first after sorting by cell, then loudness).
    cell = cls * grid.steps + step
    order = np.lexsort((-vel, cell))
    _, first = np.unique(cell[order], return_index=True)
    pick = order[first]
    onsets[cls[pick], step[pick]] = 1.0
    velocities[cls[pick], step[pick]] = vel[pick] / 127.0
    offsets[cls[pick], step[pick]] = offset[pick]
    return Groove(onsets, velocities, offsets, grid, kit, bpm, file, bar)


def write_atomic(path: str | Path, write) -> Path:
    """Call ``write(tmp_path)`` then rename over ``path``: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; the user's file should be like any other
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_midi(
    grooves: list[Groove],
    path: str | Path,
    bpm: float | None = None,
    channel: int = DRUM_CHANNEL,
    ticks_per_quarter: int = 480,
    gate: float = 0.125,
    microtiming: float = 1.0,
    fixed_velocity: int | None = None,
) -> Path:
    """Write grooves one after another as a type-0 MIDI file, atomically.

    ``gate`` is the note length in quarter notes; ``microtiming`` scales the offsets
    (0 = exactly on the grid); ``bpm`` defaults to the first groove's.
    """
    if not grooves:
        raise ValueError("nothing to write: no grooves")
    grid = grooves[0].grid
    bpm = bpm or grooves[0].bpm
    gate_ticks = max(1, round(gate * ticks_per_quarter))
    end = len(grooves) * grid.steps * ticks_per_quarter // grid.steps_per_quarter
    notes: list[tuple[int, int, int]] = []  # (note, on tick, velocity)
    for i, g in enumerate(grooves):
        for step, inst, vel, offset in g.hits():
            q = float(grid.position(step + i * grid.steps, offset * microtiming))
            notes.append((g.kit.out_notes[inst], max(0, round(q * ticks_per_quarter)), fixed_velocity or vel))
    notes.sort()
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order, msg): note-offs sort before note-ons
    for j, (note, on, vel) in enumerate(notes):
        off = on + gate_ticks
        if j + 1 < len(notes) and notes[j + 1][0] == note:
            off = max(on + 1, min(off, notes[j + 1][1]))  # a fast roll: end before the next hit of this note
        off = max(on + 1, min(off, end))  # a clip is exactly its bars long, so it loops in a DAW
        events.append((on, 1, mido.Message("note_on", channel=channel, note=note, velocity=vel)))
        events.append((off, 0, mido.Message("note_off", channel=channel, note=note, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    num, den = grid.time_signature
    track = mido.MidiTrack(
        [
            mido.MetaMessage("track_name", name="rvae", time=0),
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
            mido.MetaMessage("time_signature", numerator=num, denominator=den, time=0),
        ]
    )
    now = 0
    for t, _, msg in events:
        track.append(msg.copy(time=t - now))
        now = t
    track.append(mido.MetaMessage("end_of_track", time=max(0, end - now)))
    mid = mido.MidiFile(type=0, ticks_per_beat=ticks_per_quarter, tracks=[track])
    return write_atomic(path, mid.save)
