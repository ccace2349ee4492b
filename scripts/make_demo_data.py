#!/usr/bin/env python3
"""Generate the demo drum clips in data/: humanised, seeded, the same bytes on every run.

Usage: python scripts/make_demo_data.py [--out DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import mido
import numpy as np

TPQ = 480
STEPS_PER_Q = 24  # the project's grid: one step per MIDI clock pulse
TICKS_PER_STEP = TPQ // STEPS_PER_Q
NOTE_TICKS = TPQ // 8  # a 32nd note
MAX_OFFSET = 8  # ticks; half a step is 10, so every onset stays nearest its own step

# General MIDI; the bembé bell goes on the ride bell (53): many drum maps leave the cowbell (56) out
KICK, STICK, SNARE, CLAP, CHH, PHH, OHH, CRASH, RIDE, BELL = 36, 37, 38, 39, 42, 44, 46, 49, 51, 53
TOMS = (50, 47, 45)  # high to low, the way a fill usually falls
BACKBEAT = {SNARE, CLAP, STICK}  # the voices a laid-back player drags

Hit = tuple[int, int, int]  # (absolute step, GM note, velocity before humanising)
Rng = np.random.Generator


def chance(rng: Rng, p: float) -> bool:
    return bool(rng.random() < p)


def fill(hits: list[Hit], rng: Rng, p: float, end: int, span: int, every: int) -> list[Hit]:
    """With probability p, replace all but the kick in the clip's last `span` steps by a fill."""
    if not chance(rng, p):
        return hits
    start = end - span
    kept = [h for h in hits if h[1] == KICK or not start <= h[0] < end]
    voices = [SNARE, *TOMS] if chance(rng, 0.7) else [SNARE, SNARE, *TOMS[1:]]
    pos = list(range(start, end, every))
    n = len(pos)  # falling through the voices, getting louder
    return kept + [(s, voices[i * len(voices) // n], 85 + 30 * i // n) for i, s in enumerate(pos)]


def roll(hits: list[Hit], start: int, end: int, every: int, note: int = CHH) -> list[Hit]:
    """Replace `note` in [start, end) with a crescendo roll (trap hats, footwork snares)."""
    kept = [h for h in hits if h[1] != note or not start <= h[0] < end]
    pos = list(range(start, end, every))
    return kept + [(s, note, 50 + 50 * i // len(pos)) for i, s in enumerate(pos)]


def rock(rng: Rng, nbars: int) -> list[Hit]:
    cym = RIDE if chance(rng, 0.3) else CHH
    kicks = [0, 48] + [s for s in (30, 36, 42, 66, 78) if chance(rng, 0.3)]
    open_hat = cym == CHH and chance(rng, 0.4)  # the "and" of 4 opens, a per-song habit
    hits: list[Hit] = []
    for b in range(nbars):
        o = b * 96
        for s in range(0, 96, 12):
            note = OHH if open_hat and s == 84 else cym
            hits.append((o + s, note, 100 if s % 24 == 0 else 72))
        hits += [(o + s, KICK, 105 if s in (0, 48) else 85) for s in kicks]
        hits += [(o + 24, SNARE, 112), (o + 72, SNARE, 115)]
        hits += [(o + s, SNARE, 35) for s in (18, 42, 66, 90) if chance(rng, 0.2)]
        if chance(rng, 0.3):
            hits.append((o + int(rng.choice([18, 54, 84])), KICK, 80))
    if chance(rng, 0.5):
        hits.append((0, CRASH, 110))
    return fill(hits, rng, 0.7, nbars * 96, int(rng.choice([24, 48])), 6)


def funk(rng: Rng, nbars: int) -> list[Hit]:
    pats = ([0, 30, 36, 66], [0, 18, 42, 60], [0, 36, 42, 66, 78], [0, 12, 42, 54, 66])
    kicks = pats[int(rng.integers(len(pats)))]
    open_at = int(rng.choice([42, 90, -1]))
    hits: list[Hit] = []
    for b in range(nbars):
        o = b * 96
        for s in range(0, 96, 6):
            vel = 95 if s % 24 == 0 else 65 if s % 12 == 0 else 45
            hits.append((o + s, OHH if s == open_at else CHH, vel))
        hits += [(o + s, KICK, 100) for s in kicks]
        hits += [(o + 24, SNARE, 115), (o + 72, SNARE, 118)]
        hits += [
            (o + s, SNARE, int(rng.integers(28, 46))) for s in range(6, 96, 6) if s % 24 and chance(rng, 0.3)
        ]  # ghost notes are what make it funk
        if chance(rng, 0.25):
            hits.append((o + 6 * int(rng.integers(1, 16)), KICK, 85))
    return fill(hits, rng, 0.5, nbars * 96, 24, 6)


def trap(rng: Rng, nbars: int) -> list[Hit]:
    pats = ([0, 30, 60], [0, 42, 54, 84], [0, 18, 66, 78], [0, 36, 60, 66])
    kicks = pats[int(rng.integers(len(pats)))]
    hat_every = int(rng.choice([6, 12]))
    hits: list[Hit] = []
    for b in range(nbars):
        o = b * 96
        hits += [(o + s, CHH, 90 if s % 24 == 0 else 65) for s in range(0, 96, hat_every)]
        hits += [(o + s, KICK, 110) for s in kicks]
        hits += [(o + 48, CLAP, 115), (o + 48, SNARE, 100)]  # half-time backbeat
        for beat in range(4):
            if chance(rng, 0.35):  # rolls of 16th (4 steps) or 32nd (2 steps) triplets
                start = o + beat * 24 + int(rng.choice([0, 12]))
                hits = roll(hits, start, o + beat * 24 + 24, int(rng.choice([4, 2])))
        if chance(rng, 0.3):
            hits.append((o + int(rng.choice([42, 66, 90])), KICK, 95))
    return hits


def footwork(rng: Rng, nbars: int) -> list[Hit]:
    pats = ([0, 16, 40, 48, 64, 88], [0, 8, 32, 48, 56, 80], [0, 24, 40, 56, 72, 88])
    kicks = pats[int(rng.integers(len(pats)))]
    hits: list[Hit] = []
    for b in range(nbars):
        o = b * 96
        hits += [(o + s, CHH, (90, 50, 70)[s // 8 % 3]) for s in range(0, 96, 8)]
        hits += [(o + s, KICK, 110) for s in kicks]
        hits += [(o + 24, CLAP, 110), (o + 72, CLAP, 115)]
        hits += [(o + 8 * int(k), KICK, 90) for k in rng.choice(12, size=2, replace=False) if chance(rng, 0.4)]
        if chance(rng, 0.4):
            beat = int(rng.integers(4))
            hits = roll(hits, o + beat * 24, o + beat * 24 + 24, 4, SNARE)
        if chance(rng, 0.3):
            where = sorted(rng.choice(12, size=3, replace=False))  # three triplets, falling
            hits += [(o + 8 * int(k), tom, 85) for k, tom in zip(where, TOMS, strict=True)]
    return hits


def shuffle_12_8(rng: Rng, nbars: int) -> list[Hit]:
    cym = RIDE if chance(rng, 0.5) else CHH
    kicks = [0, 72] + [s for s in (60, 132) if chance(rng, 0.5)]
    hits: list[Hit] = []
    for b in range(nbars):
        o = b * 144
        hits += [(o + s, cym, (95, 45, 75)[s // 12 % 3]) for s in range(0, 144, 12)]
        hits += [(o + s, KICK, 100) for s in kicks]
        hits += [(o + 36, SNARE, 110), (o + 108, SNARE, 112)]
        hits += [(o + s, SNARE, 38) for s in range(12, 144, 12) if s % 36 and chance(rng, 0.15)]
    return fill(hits, rng, 0.6, nbars * 144, 36, 6)


def bembe(rng: Rng, nbars: int) -> list[Hit]:
    bell = (0, 2, 4, 5, 7, 9, 11)  # the standard 12-pulse bell, spread over two 6/8 bars
    pedal = chance(rng, 0.5)
    hits: list[Hit] = []
    for b in range(nbars):
        o, first = b * 72, 6 * (b % 2)
        hits += [(o + 12 * (p - first), BELL, 105 if p == 0 else 85) for p in bell if first <= p < first + 6]
        hits += [(o, KICK, 100), (o + 36, KICK, 85), (o + 36, STICK, 80)]
        hits += [(o + 48, TOMS[2], 95), (o + 60, TOMS[2], 90)]  # open tones, conga-style
        if pedal:
            hits += [(o + 36, PHH, 60)] if b % 2 else [(o, PHH, 60), (o + 36, PHH, 60)]
        hits += [(o + s, TOMS[0], 40) for s in range(6, 72, 12) if chance(rng, 0.15)]
    return hits


def ballad_6_8(rng: Rng, nbars: int) -> list[Hit]:
    cym = RIDE if chance(rng, 0.3) else CHH
    kicks = [0] + [s for s in (24, 60) if chance(rng, 0.4)]
    hits: list[Hit] = []
    for b in range(nbars):
        o = b * 72
        hits += [(o + s, cym, 92 if s % 36 == 0 else 62) for s in range(0, 72, 12)]
        hits += [(o + s, KICK, 100) for s in kicks] + [(o + 36, SNARE, 110)]
        hits += [(o + s, SNARE, 35) for s in (54, 66) if chance(rng, 0.2)]
        if chance(rng, 0.25):
            hits.append((o + int(rng.choice([54, 66])), KICK, 80))
    if chance(rng, 0.5):
        hits.append((0, CRASH, 105))
    return fill(hits, rng, 0.6, nbars * 72, 36, 6)


def five_4(rng: Rng, nbars: int) -> list[Hit]:
    jazz = chance(rng, 0.4)  # Take-Five-like swung ride, otherwise straight rock in 3+2
    swung = [*range(0, 120, 24), *(s * 24 + 16 for s in (1, 2, 4))]  # ding, ding-a on 2, 3, 5
    cym = swung if jazz else list(range(0, 120, 12))
    kicks = [0, 72] + [s for s in (36, 84, 60) if chance(rng, 0.3)]
    hits: list[Hit] = []
    for b in range(nbars):
        o = b * 120
        hits += [(o + s, RIDE if jazz else CHH, 95 if s % 24 == 0 else 70) for s in cym]
        hits += [(o + s, KICK, 70 if jazz else 100) for s in kicks]
        hits += [(o + 48, SNARE, 105), (o + 96, SNARE, 110)]
        if jazz:
            hits += [(o + 24, PHH, 60), (o + 72, PHH, 60)]
        hits += [(o + s, SNARE, 36) for s in range(8, 120, 8) if s % 24 and chance(rng, 0.12)]
    return fill(hits, rng, 0.5, nbars * 120, 24, int(rng.choice([6, 4])))


def seven_8(rng: Rng, nbars: int) -> list[Hit]:
    groups = [(2, 2, 3), (3, 2, 2), (2, 3, 2)][int(rng.integers(3))]
    starts = [12 * sum(groups[:i]) for i in range(3)]  # in steps, an 8th is 12
    hits: list[Hit] = []
    for b in range(nbars):
        o = b * 84
        hits += [(o + s, CHH, 100 if s in starts else 65) for s in range(0, 84, 12)]
        hits += [(o + starts[0], KICK, 105), (o + starts[1], SNARE, 112)]
        hits += [(o + starts[2], KICK, 95)]
        if groups[2] == 3 and chance(rng, 0.6):
            hits.append((o + 72, SNARE, 100))
        hits += [(o + s, KICK, 80) for s in range(6, 84, 12) if chance(rng, 0.1)]
    return fill(hits, rng, 0.5, nbars * 84, 84 - starts[2], 6)


@dataclass(frozen=True)
class Style:
    folder: str
    stem: str
    genre: str
    meter: tuple[int, int]
    clips: int
    bpm: tuple[int, int]  # quarter notes per minute, as MIDI set_tempo counts them
    build: Callable[[Rng, int], list[Hit]]
    bars: tuple[int, ...] = (2, 3, 4)
    swing: int = 0  # up to this many ticks of delay on 16th off-beats, fixed per clip
    laid_back: int = 4  # up to this many ticks the backbeat sits behind, fixed per clip


STYLES = (
    Style("4-4_rock", "rock", "rock", (4, 4), 6, (90, 130), rock, swing=3),
    Style("4-4_funk", "funk", "funk, 16th hats, ghost notes", (4, 4), 6, (88, 108), funk, swing=6),
    Style("4-4_trap", "trap", "trap, half-time, 16th/32nd-triplet hat rolls", (4, 4), 6, (130, 150), trap),
    Style("4-4_footwork", "footwork", "footwork, triplet kicks", (4, 4), 6, (160, 160), footwork, laid_back=2),
    Style("12-8_shuffle", "shuffle", "12/8 blues shuffle", (12, 8), 6, (90, 120), shuffle_12_8),
    Style("6-8", "bembe", "Afro-Cuban 6/8 (bembé bell)", (6, 8), 7, (140, 170), bembe, (2, 4)),
    Style("6-8", "ballad", "6/8 rock ballad", (6, 8), 7, (66, 90), ballad_6_8, (2, 4), swing=2),
    Style("5-4", "five", "5/4, rock 3+2 or swung ride", (5, 4), 6, (100, 140), five_4, swing=3),
    Style("7-8", "seven", "7/8, 2+2+3 / 3+2+2 / 2+3+2", (7, 8), 6, (110, 150), seven_8),
)


def humanise(hits: list[Hit], rng: Rng, style: Style) -> list[tuple[int, int, int]]:
    """Grid hits -> (tick, note, velocity), with this clip's feel and per-note jitter."""
    swing = int(rng.integers(style.swing + 1))
    laid_back = int(rng.integers(style.laid_back + 1))
    gain = rng.uniform(0.85, 1.05)  # some takes are played softer than others
    merged: dict[tuple[int, int], int] = {}
    for step, note, vel in hits:  # two builders' hits on one step and note become one
        merged[step, note] = max(merged.get((step, note), 0), vel)
    notes = []
    for (step, note), vel in sorted(merged.items()):
        offset = rng.normal(0.0, 3.0)  # sd 3 ticks: about 3 ms at 100 BPM
        offset += (swing if step % 12 == 6 else 0) + (laid_back if note in BACKBEAT else 0)
        tick = step * TICKS_PER_STEP + int(np.clip(round(offset), -MAX_OFFSET, MAX_OFFSET))
        vel = int(np.clip(round(vel * gain + rng.normal(0.0, 5.0)), 1, 127))
        notes.append((max(tick, 0), note, vel))  # a loop's first hit cannot come early
    return notes


def write_clip(path: Path, notes: list[tuple[int, int, int]], style: Style, bpm: int, length: int) -> None:
    num, den = style.meter
    events: list[tuple[int, int, int, mido.Message]] = []
    for tick, note, vel in notes:
        later = [t for t, n, _ in notes if n == note and t > tick]
        off = min([tick + NOTE_TICKS, length, *later[:1]])  # never overlap the same drum
        events.append((tick, 1, note, mido.Message("note_on", channel=9, note=note, velocity=vel)))
        events.append((off, 0, note, mido.Message("note_off", channel=9, note=note, velocity=0)))
    track = mido.MidiTrack(
        [
            mido.MetaMessage("track_name", name=path.stem, time=0),
            mido.MetaMessage(
                "time_signature",
                numerator=num,
                denominator=den,
                clocks_per_click=36 if den == 8 and num % 3 == 0 else 96 // den,
            ),
            mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)),
        ]
    )
    now = 0
    for tick, _, _, msg in sorted(events, key=lambda e: e[:3]):  # note-offs first on a shared tick
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=length - now))  # file spans whole bars
    mido.MidiFile(type=0, ticks_per_beat=TPQ, tracks=[track]).save(path)


def make_style(style: Style, out: Path, seed: int) -> tuple[list[int], list[int]]:
    """Write one style's clips; return their bar counts and tempi."""
    folder = out / style.folder
    folder.mkdir(parents=True, exist_ok=True)
    num, den = style.meter
    bar_steps = num * 4 * STEPS_PER_Q // den
    bars, tempi, written = [], [], []
    for i in range(1, style.clips + 1):
        # seeded per style and clip (crc32, not hash(): that changes between runs)
        rng = np.random.default_rng([seed, zlib.crc32(style.stem.encode()), i])
        nbars = int(rng.choice(style.bars))
        bpm = int(rng.integers(style.bpm[0], style.bpm[1] + 1))
        hits = [h for h in style.build(rng, nbars) if 0 <= h[0] < nbars * bar_steps]
        written.append(folder / f"{style.stem}_{i:02d}.mid")
        length = nbars * bar_steps * TICKS_PER_STEP
        write_clip(written[-1], humanise(hits, rng, style), style, bpm, length)
        bars.append(nbars)
        tempi.append(bpm)
    for stale in folder.glob(f"{style.stem}_*.mid"):  # left over from a run with more clips
        if stale not in written:
            stale.unlink()
    return bars, tempi


README = """# Demo drum clips

Short humanised drum grooves that the project generates itself, so that training,
generation and the tests work on a fresh checkout. Every file here was made by
`scripts/make_demo_data.py` (`python scripts/make_demo_data.py --seed {seed}`); running it
again writes the same bytes. They are free to use for anything: CC0 1.0 (public domain).

| folder | meter | genre | clips | bars | tempo (quarter-note BPM) |
|---|---|---|---|---|---|
{rows}

- MIDI type 0, 480 ticks per quarter, one `set_tempo` and one `time_signature` at tick 0;
  each file is exactly a whole number of bars long (2 to 4).
- Drums on MIDI channel 10, General MIDI notes: 36 kick, 37 side stick, 38 snare, 39 clap,
  42/44/46 closed/pedal/open hat, 49 crash, 51 ride, 53 ride bell (the bembé bell), 45/47/50 toms.
  Every note-on has a note-off a 32nd note later (sooner if the same drum plays again).
- Onsets lie on a grid of 24 steps per quarter note (20 ticks): 16ths, 8th triplets,
  16th triplets and 32nd triplets. Humanisation moves them by at most 8 ticks, under half a
  step, so each onset stays nearest its own step. Per clip: a random variation of the
  genre's pattern (fills, ghost notes, extra kicks, hat rolls), a velocity gain, a swing
  amount on 16th off-beats, a laid-back backbeat; per note: velocity and timing jitter.
- Tempo is in quarter notes per minute, as MIDI counts it: in 6/8 and 12/8 the felt beat,
  the dotted quarter, runs at two thirds of that.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    repo = Path(__file__).resolve().parent.parent
    parser.add_argument("--out", type=Path, default=repo / "data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows: list[str] = []
    per_folder: dict[str, list[str]] = {}
    for style in STYLES:
        bars, tempi = make_style(style, args.out, args.seed)
        meter = f"{style.meter[0]}/{style.meter[1]}"
        nbars, bpm = (f"{min(v)}-{max(v)}" if min(v) < max(v) else str(v[0]) for v in (bars, tempi))
        rows.append(
            f"| `{style.folder}/` ({style.stem}_NN.mid) | {meter} | {style.genre} | {style.clips} | {nbars} | {bpm} |"
        )
        per_folder.setdefault(style.folder, []).append(f"{style.clips} {style.stem} ({meter}, {nbars} bars, {bpm} BPM)")
    (args.out / "README.md").write_text(README.format(seed=args.seed, rows="\n".join(rows)), encoding="utf-8")
    for folder, parts in per_folder.items():
        print(f"{folder}: " + ", ".join(parts))


if __name__ == "__main__":
    main()
