"""Reading drum MIDI files into Grooves and writing Grooves back as MIDI files.

Reading uses a small Standard MIDI File scanner of its own (the 1,016 files of the Groove
subset in 0.3-0.5 s; mido takes 6.5-7 s). symusic's C++ parser (0.04 s) was used before, but it
makes notes from note-on/note-off pairs: a note-on with no note-off after it in its track (drum
machines and generated clips often write none; a note-off at the note-on's own tick does not
count) was dropped, and it keeps no end-of-track. Writing uses mido.

What is read:
- Hits: every note-on with a velocity above 0 is a hit, whether or not a note-off follows (a
  drum hit's length does not matter).
- Channels: notes on MIDI channel 10 are the drums. A file with nothing on channel 10 is read
  whole, since DAW clips are often exported on channel 1; the Kit then decides what is a drum.
  If the kit maps fewer than half of such a file's notes (a piano piece), it is skipped, saying
  so, unless ``all_channels``, which also reads every channel of files that have channel 10.
- Bad messages: a channel message with a data byte above 127, or an undefined status byte
  (0xF4, 0xF5, 0xF9, 0xFD), is skipped and counted, and the rest of the file is read. A file cut
  short, or with bytes that cannot start a message, is skipped whole.
- Bars: from the file's time-signature events (4/4 until the first one, as MIDI specifies),
  each meter section starting its bars where its event stands. Bars in meters other than the
  grid's are left out and counted per meter (bars and hits). ``force=True`` ignores the events
  and lays the grid's meter from tick 0, as does a file with no time-signature event at all
  (common in DAW clips).
- The last bar: a hit on the final downbeat (the crash that ends a take, a hair early or late)
  opens a bar only when its track's end-of-track lies at or after that bar's end (a two-bar clip
  whose end says it is two bars keeps a kick on bar 2's downbeat).
- Layered hits: two hits of one class in one cell keep the louder, and are counted.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import mido
import numpy as np

from rvae.errors import UserError
from rvae.files import write_atomic
from rvae.grid import Grid
from rvae.groove import Groove
from rvae.kit import Kit
from rvae.text import counted, listing

__all__ = [
    "MidiFileLoops",
    "MidiNotes",
    "MidiReadError",
    "cut_loops",
    "file_meter",
    "meter_bars",
    "parse_midi",
    "read_midi",
    "write_midi",
]

DRUM_CHANNEL = 9  # MIDI channel 10, counted from 0


class MidiReadError(UserError):
    """A file that cannot give any loop; the message is the reason, in words. ``read`` holds
    what was counted before the file was given up, when it got that far."""

    def __init__(self, reason: str, read: MidiFileLoops | None = None):
        super().__init__(reason)
        self.read = read


@dataclass
class MidiNotes:
    """What the scanner reads from one file: every note-on, the meter events, the track ends."""

    path: Path
    ticks_per_quarter: int
    tick: np.ndarray  # (N,) int64, sorted (stable: file order within a tick)
    channel: np.ndarray  # (N,) 0..15
    pitch: np.ndarray  # (N,)
    velocity: np.ndarray  # (N,) 1..127
    track_end: np.ndarray  # (N,) the end-of-track tick of each note's track
    time_signatures: list[tuple[int, int, int]]  # (tick, numerator, denominator), in file order
    bpm: float = 120.0  # the first tempo
    bad: Counter[str] = field(default_factory=Counter)  # messages skipped, by what was wrong

    def drums(self, all_channels: bool = False) -> np.ndarray:
        """Which notes are read: channel 10's, or every channel's when there are none there."""
        on10 = self.channel == DRUM_CHANNEL
        return np.ones(len(on10), bool) if all_channels or not on10.any() else on10


@dataclass
class MidiFileLoops:
    path: Path
    loops: list[Groove] = field(default_factory=list)
    meters: list[str] = field(default_factory=list)  # every meter the file uses, most hits first
    bpm: float = 120.0
    notes: int = 0  # notes read (channel 10's, or all channels')
    unmapped: int = 0  # notes no kit class reads
    off_channel_10: int = 0  # notes read from other channels than 10
    off_channel_10_unmapped: int = 0  # of those, notes no kit class reads
    other_meters: dict[str, list[int]] = field(default_factory=dict)  # meter -> [bars, hits] left out
    merged: int = 0  # hits merged into a louder one of their class in the same cell
    bad_messages: int = 0  # malformed messages skipped
    said: list[str] = field(default_factory=list)  # what a reader should hear about this file

    @property
    def bars_other_meter(self) -> int:
        return sum(bars for bars, _ in self.other_meters.values())


# ---------------------------------------------------------------------------- the scanner

_SYSTEM_DATA = {0xF1: 1, 0xF2: 2, 0xF3: 1}  # other system messages (F6, F8-FE) carry no data
_UNDEFINED = {0xF4, 0xF5, 0xF9, 0xFD}


class _NotAMessage(Exception):
    pass


def _vlq(b: bytes, pos: int) -> tuple[int, int]:
    value = 0
    while True:
        v = b[pos]
        pos += 1
        value = (value << 7) | (v & 0x7F)
        if not v & 0x80:
            return value, pos


def _scan_track(b: bytes, notes: list, time_signatures: list, tempos: list, bad: Counter[str]) -> int:
    """Append each note-on (tick, channel, note, velocity) of one track chunk's bytes to
    ``notes``, and its meter and tempo events; return its end-of-track tick. Running status
    carries over meta and sysex events, as players do. Raises IndexError if a message is cut
    short, _NotAMessage if a data byte stands where a message must start."""
    pos, tick, status, n = 0, 0, 0, len(b)
    append = notes.append
    while pos < n:
        v = b[pos]  # delta time, inline: this loop is the hot path of reading
        pos += 1
        if v < 0x80:
            tick += v
        else:
            delta = v & 0x7F
            while v & 0x80:
                v = b[pos]
                pos += 1
                delta = (delta << 7) | (v & 0x7F)
            tick += delta
        s = b[pos]
        if s >= 0x80:
            pos += 1
            if s < 0xF0:
                status = s
        elif status:
            s = status
        else:
            raise _NotAMessage
        if s < 0xF0:
            if 0xC0 <= s < 0xE0:  # program change, channel pressure: one data byte
                if b[pos] & 0x80:
                    bad["a data byte above 127"] += 1
                pos += 1
            else:
                d1 = b[pos]
                d2 = b[pos + 1]
                pos += 2
                if (d1 | d2) & 0x80:
                    bad["a data byte above 127"] += 1
                elif 0x90 <= s < 0xA0 and d2:
                    append((tick, s & 0x0F, d1, d2))
        elif s == 0xFF:
            meta = b[pos]
            length, pos = _vlq(b, pos + 1)
            data = b[pos : pos + length]
            pos += length
            if meta == 0x2F:
                return tick
            if meta == 0x58:
                if length >= 2 and data[0] >= 1 and data[1] <= 6:
                    time_signatures.append((tick, data[0], 2 ** data[1]))
                else:
                    bad["a time signature that is not one"] += 1
            elif meta == 0x51 and length == 3:
                tempos.append((tick, int.from_bytes(data, "big")))
        elif s == 0xF0 or s == 0xF7:
            length, pos = _vlq(b, pos)
            pos += length
        else:
            if s in _UNDEFINED:
                bad[f"an undefined status byte 0x{s:X}"] += 1
            pos += _SYSTEM_DATA.get(s, 0)
    if pos > n:
        raise IndexError
    return tick


def parse_midi(path: str | Path) -> MidiNotes:
    """Every note-on of a Standard MIDI File. Raises MidiReadError for a file that is not one,
    is cut short, or cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MidiReadError(f"cannot be read ({e.strerror or e})") from None
    if not data:
        raise MidiReadError("is empty")
    if not data.startswith(b"MThd"):
        raise MidiReadError("is not a MIDI file (it does not start with 'MThd')")
    if len(data) < 14:
        raise MidiReadError("is corrupt or truncated (its header is cut short)")
    division = int.from_bytes(data[12:14], "big")
    if division & 0x8000:
        raise MidiReadError("uses SMPTE time division, which has no beats to put on a grid")
    if division == 0:
        raise MidiReadError("is corrupt (its header says 0 ticks per quarter note)")
    notes: list[tuple[int, int, int, int]] = []
    ends: list[tuple[int, int]] = []  # (notes so far, end tick) after each track
    time_signatures: list[tuple[int, int, int]] = []
    tempos: list[tuple[int, int]] = []
    bad: Counter[str] = Counter()
    pos, track = 8 + int.from_bytes(data[4:8], "big"), 0
    while pos + 8 <= len(data):  # bytes after the last chunk are ignored, as other readers do
        chunk, start = data[pos : pos + 4], pos + 8
        pos = start + int.from_bytes(data[pos + 4 : pos + 8], "big")
        if chunk != b"MTrk":
            continue  # the standard says to skip chunk types one does not know
        track += 1
        if pos > len(data):
            raise MidiReadError(f"is corrupt or truncated (track {track} is cut short)")
        try:
            end = _scan_track(data[start:pos], notes, time_signatures, tempos, bad)
        except IndexError:
            raise MidiReadError(f"is corrupt or truncated (track {track} ends inside a message)") from None
        except _NotAMessage:
            raise MidiReadError(f"is corrupt (track {track} has a data byte where a message must start)") from None
        ends.append((len(notes), end))
    a = np.array(notes, dtype=np.int64).reshape(-1, 4)
    counts = np.diff([0] + [n for n, _ in ends])
    track_end = np.repeat(np.array([e for _, e in ends], dtype=np.int64), counts)
    order = np.argsort(a[:, 0], kind="stable")
    first_tempo = min(tempos, key=lambda t: t[0])[1] if tempos else 500_000
    return MidiNotes(
        path,
        division,
        a[order, 0],
        a[order, 1],
        a[order, 2],
        a[order, 3],
        track_end[order],
        time_signatures,
        mido.tempo2bpm(first_tempo) if first_tempo else 120.0,
        bad,
    )


# ---------------------------------------------------------------------------- meters and bars


def _meter_sections(
    time_signatures: list[tuple[int, int, int]], end_tick: int, force: tuple[int, int] | None
) -> list[tuple[int, int, tuple[int, int]]]:
    """[(start_tick, end_tick, (num, den))] covering [0, end_tick)."""
    if force is not None:
        return [(0, end_tick, force)]
    events: dict[int, tuple[int, int]] = {0: (4, 4)}
    for t, num, den in time_signatures:
        events[t] = (num, den)  # the last event at a tick wins
    starts = sorted(t for t in events if t < end_tick)
    bounds = [*starts[1:], end_tick]
    return [(s, e, events[s]) for s, e in zip(starts, bounds, strict=True) if e > s]


def _bars(start: float, end: float, meter: tuple[int, int], tpq: int) -> int:
    return int(np.ceil((end - start) / (tpq * 4 * meter[0] / meter[1]) - 1e-9))


def meter_bars(notes: MidiNotes, all_channels: bool = False) -> dict[str, list[int]]:
    """{meter: [bars, hits]} for each meter the file's time signatures lay out up to its last
    hit, most hits first; {} when it states no meter or has no notes."""
    tick = notes.tick[notes.drums(all_channels)]
    if not notes.time_signatures or not len(tick):
        return {}
    out: dict[str, list[int]] = {}
    for s, e, meter in _meter_sections(notes.time_signatures, int(tick[-1]) + 1, None):
        got = out.setdefault(f"{meter[0]}/{meter[1]}", [0, 0])
        got[0] += _bars(s, e, meter, notes.ticks_per_quarter)
        got[1] += int(np.searchsorted(tick, e) - np.searchsorted(tick, s))
    return dict(sorted(out.items(), key=lambda kv: (-kv[1][1], -kv[1][0])))


def file_meter(path: str | Path) -> str | None:
    """The meter most of a file's bars are in, weighted by the hits in them ("6/8"); None if it
    states none."""
    weights = meter_bars(parse_midi(path))
    return next(iter(weights), None)


# ---------------------------------------------------------------------------- notes into loops


def read_midi(path: str | Path, grid: Grid, kit: Kit, force: bool = False, all_channels: bool = False) -> MidiFileLoops:
    """Every loop of ``grid.bars`` bars of the grid's meter in the file, as Grooves.

    Raises MidiReadError when the file gives none: unreadable, not MIDI, corrupt, no drum
    notes, or no bar in the grid's meter (unless ``force``)."""
    return cut_loops(parse_midi(path), grid, kit, force, all_channels)


def cut_loops(src: MidiNotes, grid: Grid, kit: Kit, force: bool = False, all_channels: bool = False) -> MidiFileLoops:
    """``read_midi`` on a file already parsed."""
    path, tpq = src.path, src.ticks_per_quarter
    read = src.drums(all_channels)
    tick, pitch, vel, track_end = src.tick[read], src.pitch[read], src.velocity[read], src.track_end[read]
    if len(tick) == 0:
        raise MidiReadError("has no notes")
    cls = kit.lookup()[pitch]
    mapped = cls >= 0
    off10 = src.channel[read] != DRUM_CHANNEL
    result = MidiFileLoops(
        path,
        bpm=src.bpm,
        notes=len(tick),
        unmapped=int((~mapped).sum()),
        off_channel_10=int(off10.sum()),
        off_channel_10_unmapped=int((off10 & ~mapped).sum()),
        bad_messages=sum(src.bad.values()),
    )
    if result.bad_messages:
        kinds = ", ".join(src.bad)
        result.said.append(f"skipped {counted(result.bad_messages, 'malformed message')} ({kinds}) and read the rest")
    if not (src.channel == DRUM_CHANNEL).any() and 2 * result.unmapped > result.notes:
        share = f"{100 * result.unmapped / result.notes:.0f}%"
        if not all_channels:
            raise MidiReadError(
                f"has no channel 10, and most notes are unmapped ({share}: not drums? --all-channels reads it)",
                read=result,
            )
        result.said.append(f"no channel 10; read all channels: {share} of notes unmapped, not drums?")
    if not mapped.any():
        raise MidiReadError(
            f"has no drum notes that kit {kit.name!r} reads ({len(tick)} notes, none mapped)", read=result
        )
    tick, cls, vel, track_end = tick[mapped], cls[mapped], vel[mapped], track_end[mapped]

    half = tpq / (2 * grid.steps_per_quarter)  # half a step in ticks: a note this early belongs to the next step
    force = force or not src.time_signatures  # no meter stated: read it in the grid's
    meter_of = grid.time_signature if force else None
    # The last bar is the one the last hit quantizes into only if the file says it has that
    # bar (its track ends at or after the bar's end): otherwise a downbeat that ends the take
    # would open a bar of one hit the file does not have.
    last = int(tick[-1])
    end_tick = max(1, int(np.floor(last - half)) + 1)
    at = last + half  # where the last hit quantizes to
    s, _, meter = _meter_sections(src.time_signatures, int(np.floor(at)) + 1, meter_of)[-1]
    bar = tpq * 4 * meter[0] / meter[1]
    if int(track_end.max()) >= s + (np.floor((at - s) / bar + 1e-9) + 1) * bar - 1e-9:
        end_tick = max(end_tick, int(np.floor(at)) + 1)
    sections = _meter_sections(src.time_signatures, end_tick, meter_of)

    hits_by_meter: Counter[str] = Counter()
    bars_before = 0  # bars of the file before this section: loops are named by the file's bar numbers
    for start, end, meter in sections:
        name = f"{meter[0]}/{meter[1]}"
        n_bars = _bars(start, end, meter, tpq)
        first_bar, bars_before = bars_before + 1, bars_before + n_bars
        hits = int(np.searchsorted(tick + half, end) - np.searchsorted(tick + half, start))
        hits_by_meter[name] += hits
        if meter != grid.time_signature:
            got = result.other_meters.setdefault(name, [0, 0])
            got[0] += n_bars
            got[1] += hits
            continue
        # Each note is quantized once, from the section start, and its step picks its loop.
        # (Cutting loop by loop with float bounds put a note exactly half a step before a bar
        # line into the next loop at step -1, and _loop clipped it to step 0: a step late.)
        step, offset = grid.quantize_ticks(tick - start, tpq)  # steps never decrease: ticks are sorted
        n_loops = n_bars // grid.bars
        bounds = np.searchsorted(step, np.arange(n_loops + 1) * grid.steps)
        for k, (lo, hi) in enumerate(itertools.pairwise(bounds)):
            loop, merged = _loop(
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
            result.loops.append(loop)
            result.merged += merged
    result.meters = [m for m, _ in sorted(hits_by_meter.items(), key=lambda kv: -kv[1])]
    if not result.loops:
        if grid.meter not in result.meters:
            raise MidiReadError(
                f"is in {', '.join(result.meters)}, not the model's {grid.meter} "
                f"(--force-meter reads it as {grid.meter})",
                read=result,
            )
        # Only a loop of several bars can be longer than every stretch of the grid's meter.
        raise MidiReadError(f"has no {counted(grid.bars, 'bar')} of {grid.meter} in a row to make a loop", read=result)
    if any(hits for _, hits in result.other_meters.values()):  # an empty bar of another meter loses nothing
        most = sorted(result.other_meters.items(), key=lambda kv: -kv[1][0])
        parts = [f"{counted(bars, 'bar')} of {m}" for m, (bars, _) in most]
        hits = sum(h for _, h in result.other_meters.values())
        result.said.append(f"left out {listing(parts)} ({counted(hits, 'hit')}): not the model's {grid.meter}")
    return result


def _loop(step, offset, cls, vel, grid: Grid, kit: Kit, bpm: float, file: str, bar: int) -> tuple[Groove, int]:
    """One loop's Groove, and how many hits were merged into a louder one in their cell."""
    shape = (len(kit), grid.steps)
    onsets, velocities, offsets = (np.zeros(shape, np.float32) for _ in range(3))
    step = np.clip(step, 0, grid.steps - 1)
    # Two hits of one class in one cell (crash 49 + 57 struck together, or a flam inside one
    # step): keep the loudest (first after sorting by cell, then loudness).
    cell = cls * grid.steps + step
    order = np.lexsort((-vel, cell))
    _, first = np.unique(cell[order], return_index=True)
    pick = order[first]
    onsets[cls[pick], step[pick]] = 1.0
    velocities[cls[pick], step[pick]] = vel[pick] / 127.0
    offsets[cls[pick], step[pick]] = offset[pick]
    return Groove(onsets, velocities, offsets, grid, kit, bpm, file, bar), len(step) - len(pick)


def _in_cell(tick: int, step: int, steps_per_quarter: int, ticks_per_quarter: int) -> int:
    """Keep a tick inside its step's cell: an offset near +1 half step rounds to the cell's
    edge, which reading rounds half up into the next step. A cell spans ticks t with
    (2 step - 1) tpq <= 2 spq t < (2 step + 1) tpq; integer ceilings keep that exact."""
    lo = -(-(2 * step - 1) * ticks_per_quarter // (2 * steps_per_quarter))
    hi = -(-(2 * step + 1) * ticks_per_quarter // (2 * steps_per_quarter)) - 1
    return tick if hi < lo else min(max(tick, lo), hi)  # a cell narrower than a tick cannot hold it


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
            at = step + i * grid.steps
            q = float(grid.position(np.asarray(at), np.asarray(offset * microtiming)))
            tick = _in_cell(round(q * ticks_per_quarter), at, grid.steps_per_quarter, ticks_per_quarter)
            notes.append((g.kit.out_notes[inst], max(0, tick), fixed_velocity or vel))
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
