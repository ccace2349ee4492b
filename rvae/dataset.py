"""From folders of MIDI files to a set of training loops, with a report of what was skipped.

Bad input never stops a run: each file that gives nothing is listed with its reason, each file
read with something left out says so, and the others go on. Loops with fewer than
``min_onsets`` hits are dropped (as R-VAE does: near-empty bars teach the model nothing but
silence). A small set is duplicated up to ``min_loops`` loops, as R-VAE duplicates to 64, so
that a few loops still fill batches.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from rvae.errors import ConfigError, UserError, check_at_least
from rvae.grid import Grid, parse_time_signature
from rvae.groove import Groove
from rvae.kit import KITS, Kit, load_kit
from rvae.midi_io import MidiNotes, MidiReadError, cut_loops, meter_bars, parse_midi
from rvae.text import counted, listing

__all__ = ["DataConfig", "Dataset", "find_midi_files", "infer_meter", "load_dataset", "load_loops"]

MIDI_SUFFIXES = (".mid", ".midi")


@dataclass
class DataConfig:
    time_signature: str | None = None  # the model's meter; None: the meter most bars of the files are in
    steps_per_quarter: int = 24  # 24 = one step per MIDI clock pulse; holds 16ths and triplets
    bars: int = 1  # bars per loop
    kit: str = "default"  # built-in kit name or a .toml/.json drum map
    force_meter: bool = False  # read every file in the model's meter, ignoring its time signature
    min_onsets: int = 5  # loops with fewer hits are dropped (R-VAE's threshold)
    min_loops: int = 64  # smaller sets are duplicated up to this (R-VAE duplicates to 64)
    # Files with no channel 10 whose notes the kit mostly does not map are skipped as "not drums?"
    all_channels: bool = field(
        default=False,
        metadata={
            "help": "read the notes of every MIDI channel, not only channel 10's, and keep files "
            "whose notes the kit mostly does not map"
        },
    )

    def __post_init__(self) -> None:
        check_at_least(self, 1, "steps_per_quarter", "bars")
        check_at_least(self, 0, "min_onsets", "min_loops")
        if self.time_signature:
            try:
                num, den = parse_time_signature(self.time_signature)
            except UserError:
                raise ConfigError(
                    "time_signature",
                    self.time_signature,
                    "must be N/D, N 1 or more and D a power of two up to 32, e.g. 4/4 or 7/8",
                ) from None
            need = Fraction(4, den).denominator  # a bar is 4 * num / den quarters
            if Fraction(4 * num * self.steps_per_quarter, den).denominator != 1:
                raise ConfigError(
                    "steps_per_quarter",
                    self.steps_per_quarter,
                    f"does not divide a bar of {num}/{den}: choose a multiple of {need}",
                )
        if self.kit not in KITS and not Path(self.kit).is_file():
            raise ConfigError("kit", self.kit, f"is neither a built-in kit ({', '.join(KITS)}) nor a file")


_PLURAL_VERBS = {"is": "are", "has": "have", "does": "do", "holds": "hold"}


def _counted(count: int, reason: str) -> str:
    """'1 is empty', '2 are empty': a reason said of several files."""
    verb, _, rest = reason.partition(" ")
    return f"{count} {_PLURAL_VERBS.get(verb, verb) if count > 1 else verb} {rest}"


@dataclass
class Dataset:
    grid: Grid
    kit: Kit
    loops: list[Groove] = field(default_factory=list)  # unique loops, in file order
    files: list[Path] = field(default_factory=list)  # files that gave at least one loop
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    said: list[tuple[str, str]] = field(default_factory=list)  # (path, what was left out) of files read
    sparse_loops: int = 0  # dropped for having fewer than min_onsets hits
    notes: int = 0
    unmapped: int = 0
    merged: int = 0  # layered hits: merged into a louder hit of their class in the same cell
    other_meters: Counter[str] = field(default_factory=Counter)  # bars left out, by meter
    other_meter_hits: int = 0
    other_meter_files: int = 0
    bad_messages: int = 0  # malformed messages skipped in files read
    bad_message_files: int = 0
    # For the drum-map warning: every file with notes, the skipped ones too
    seen_notes: int = 0
    off_channel_10: int = 0  # notes read from other channels than 10
    off_channel_10_unmapped: int = 0
    meter_note: str = ""  # how the meter was chosen
    copies: int = 1  # how many times the loops are repeated for training
    config: DataConfig | None = None  # how load_dataset read it; train saves it in the checkpoint

    def lines(self) -> list[str]:
        """One line for each file skipped, and each file read with something left out."""
        return [f"skipped {p}: {r}" for p, r in self.skipped] + [f"{p}: {r}" for p, r in self.said]

    def summary(self) -> str:
        reasons = Counter(reason.split(" (")[0] for _, reason in self.skipped)
        g = self.grid
        lines = [
            f"meter {g.meter} ({self.meter_note}), {g.steps_per_quarter} steps per quarter, "
            f"{counted(g.bars, 'bar')} per loop = {g.steps} steps; "
            f"kit {self.kit.name!r} ({counted(len(self.kit), 'instrument')})",
            f"files read: {len(self.files)}, skipped: {len(self.skipped)}"
            + (" (" + "; ".join(_counted(n, r) for r, n in reasons.most_common()) + ")" if reasons else ""),
            f"loops kept: {len(self.loops)}, dropped with fewer than the minimum onsets: {self.sparse_loops}",
            f"notes: {self.notes}, unmapped by the kit: {self.unmapped}"
            + (f" ({100 * self.unmapped / self.notes:.1f}%)" if self.notes else "")
            + (f", layered: {self.merged} merged into a louder hit of their class" if self.merged else ""),
        ]
        if self.other_meters:
            bars = listing([f"{n} of {m}" for m, n in self.other_meters.most_common()])
            lines.append(
                f"bars in other meters left out: {bars} ({counted(self.other_meter_hits, 'hit')}) "
                f"in {counted(self.other_meter_files, 'file')}"
            )
        if self.bad_messages:
            files = counted(self.bad_message_files, "file")
            lines.append(f"malformed messages skipped: {self.bad_messages} in {files}")
        if self.map_looks_wrong():
            share = 100 * (1 - self.off_channel_10_unmapped / self.off_channel_10)
            lines.append(
                f"warning: most notes are off channel 10 and kit {self.kit.name!r} maps only {share:.0f}% "
                f"of them: the drum map may be wrong (--kit {', '.join(KITS)}, or a kit file)"
            )
        if self.copies > 1:
            lines.append(
                f"small set: duplicated {len(self.loops)} loops x{self.copies} = {len(self.loops) * self.copies}"
            )
        return "\n".join(lines)

    def map_looks_wrong(self) -> bool:
        """Most notes are off channel 10, and the kit maps fewer than half of those."""
        return 2 * self.off_channel_10 > self.seen_notes and 2 * self.off_channel_10_unmapped > self.off_channel_10

    def to_dict(self) -> dict:
        return {
            "files_read": len(self.files),
            "files_skipped": len(self.skipped),
            "loops": len(self.loops),
            "sparse_loops_dropped": self.sparse_loops,
            "notes": self.notes,
            "notes_unmapped": self.unmapped,
            "notes_merged": self.merged,
            "bars_other_meter": sum(self.other_meters.values()),
            "hits_other_meter": self.other_meter_hits,
            "copies": self.copies,
            "meter": self.grid.meter,
        }


def find_midi_files(paths: list[str | Path]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Every .mid/.midi file (any case) under the given files and folders, sorted, plus
    (path, reason) for each path that gave none."""
    found: list[Path] = []
    problems: list[tuple[str, str]] = []
    for p in map(Path, paths):
        if p.is_dir():
            inside = []
            for root, dirs, names in os.walk(
                p, onerror=lambda e: problems.append((e.filename, f"cannot be read ({e.strerror})"))
            ):
                dirs.sort()
                inside += [Path(root) / n for n in sorted(names) if n.lower().endswith(MIDI_SUFFIXES)]
            if not inside:
                problems.append((str(p), "holds no .mid or .midi files"))
            found += inside
        elif p.exists() or p.is_symlink():
            found.append(p)  # named explicitly: read it whatever its suffix, reading will judge it
        else:
            problems.append((str(p), "does not exist"))
    return found, problems


def _parse_all(files: list[Path]) -> list[MidiNotes | MidiReadError]:
    parsed: list[MidiNotes | MidiReadError] = []
    for f in files:
        try:
            parsed.append(parse_midi(f))
        except MidiReadError as e:
            parsed.append(e)
    return parsed


def infer_meter(parsed: list[MidiNotes | MidiReadError], all_channels: bool = False) -> tuple[str, str]:
    """The meter most bars of the files are in, and a note saying so. A file that states no
    meter does not vote."""
    bars: Counter[str] = Counter()
    for p in parsed:
        if isinstance(p, MidiNotes):
            for meter, (n, _) in meter_bars(p, all_channels).items():
                bars[meter] += n
    if not bars:
        return "4/4", "no file states a meter: 4/4"
    meter, n = bars.most_common(1)[0]
    return meter, f"the meter of most bars, {n} of {bars.total()}"


def _read_loops(
    ds: Dataset,
    files: list[Path],
    force_meter: bool,
    min_onsets: int,
    all_channels: bool = False,
    parsed: list[MidiNotes | MidiReadError] | None = None,
) -> Dataset:
    """Add the loops of ``files`` on ds's grid and kit to ``ds``, without those of fewer than
    ``min_onsets`` hits: the one way training, ``rvae eval`` and experiments read loops."""
    for f, p in zip(files, parsed or _parse_all(files), strict=True):
        try:
            if isinstance(p, MidiReadError):
                raise p
            got = cut_loops(p, ds.grid, ds.kit, force=force_meter, all_channels=all_channels)
        except MidiReadError as e:
            ds.skipped.append((str(f), str(e)))
            if e.read is not None:
                _count_channels(ds, e.read)
            continue
        _count_channels(ds, got)
        ds.notes += got.notes
        ds.unmapped += got.unmapped
        ds.merged += got.merged
        if got.other_meters:
            ds.other_meter_files += 1
            for meter, (bars, hits) in got.other_meters.items():
                ds.other_meters[meter] += bars
                ds.other_meter_hits += hits
        if got.bad_messages:
            ds.bad_messages += got.bad_messages
            ds.bad_message_files += 1
        kept = [g for g in got.loops if g.n_onsets >= min_onsets]
        ds.sparse_loops += len(got.loops) - len(kept)
        if kept:
            ds.files.append(f)
            ds.loops += kept
            ds.said += [(str(f), line) for line in got.said]
        else:
            ds.skipped.append((str(f), f"has no loop with at least {min_onsets} onsets"))
    return ds


def _count_channels(ds: Dataset, got) -> None:
    ds.seen_notes += got.notes
    ds.off_channel_10 += got.off_channel_10
    ds.off_channel_10_unmapped += got.off_channel_10_unmapped


def load_loops(
    paths: list[str | Path],
    grid: Grid,
    kit: Kit,
    force_meter: bool = False,
    min_onsets: int = DataConfig.min_onsets,
    all_channels: bool = False,
) -> Dataset:
    """Loops of MIDI files and folders on a given grid and kit (a model's), read and dropped
    as ``load_dataset`` does for training, but never duplicated (``copies`` stays 1)."""
    files, skipped = find_midi_files(paths)
    ds = Dataset(grid, kit, skipped=skipped, meter_note="given")
    return _read_loops(ds, files, force_meter, min_onsets, all_channels)


def load_dataset(paths: list[str | Path], config: DataConfig | None = None) -> Dataset:
    """Read every MIDI file under ``paths`` into loops on one grid. Never raises for a bad
    file; raises UserError for a bad setting (meter, kit)."""
    config = config or DataConfig()
    kit = load_kit(config.kit)
    files, skipped = find_midi_files(paths)
    parsed = _parse_all(files)  # once: the meter vote and the loops both read them
    if config.time_signature:
        meter, note = config.time_signature, "as asked"
    else:
        meter, note = infer_meter(parsed, config.all_channels)
    grid = Grid(parse_time_signature(meter), config.steps_per_quarter, config.bars)
    ds = Dataset(grid, kit, skipped=skipped, meter_note=note, config=config)
    _read_loops(ds, files, config.force_meter, config.min_onsets, config.all_channels, parsed)
    if ds.loops and len(ds.loops) < config.min_loops:
        ds.copies = -(-config.min_loops // len(ds.loops))
    return ds
