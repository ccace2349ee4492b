"""From folders of MIDI files to a set of training loops, with a report of what was skipped.

Bad input never stops a run: each file that gives nothing is listed with its reason and the
others go on. Loops with fewer than ``min_onsets`` hits are dropped (as R-VAE does: near-
empty bars teach the model nothing but silence). A small set is duplicated up to
``min_loops`` loops, as R-VAE duplicates to 64, so that a few loops still fill batches.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from rvae.grid import Grid, parse_time_signature
from rvae.groove import Groove
from rvae.kit import Kit, load_kit
from rvae.midi_io import MidiReadError, file_meter, read_midi

__all__ = ["DataConfig", "Dataset", "find_midi_files", "load_dataset", "load_loops"]

MIDI_SUFFIXES = (".mid", ".midi")


@dataclass
class DataConfig:
    time_signature: str | None = None  # the model's meter; None: the most common meter of the files
    steps_per_quarter: int = 24  # 24 = one step per MIDI clock pulse; holds 16ths and triplets
    bars: int = 1  # bars per loop
    kit: str = "default"  # built-in kit name or a .toml/.json drum map
    force_meter: bool = False  # read every file in the model's meter, ignoring its time signature
    min_onsets: int = 5  # loops with fewer hits are dropped (R-VAE's threshold)
    min_loops: int = 64  # smaller sets are duplicated up to this (R-VAE duplicates to 64)


@dataclass
class Dataset:
    grid: Grid
    kit: Kit
    loops: list[Groove] = field(default_factory=list)  # unique loops, in file order
    files: list[Path] = field(default_factory=list)  # files that gave at least one loop
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    sparse_loops: int = 0  # dropped for having fewer than min_onsets hits
    notes: int = 0
    unmapped: int = 0
    meter_note: str = ""  # how the meter was chosen
    copies: int = 1  # how many times the loops are repeated for training
    config: DataConfig | None = None  # how load_dataset read it; train saves it in the checkpoint

    def summary(self) -> str:
        reasons = Counter(reason.split(" (")[0] for _, reason in self.skipped)
        lines = [
            f"meter {self.grid.meter} ({self.meter_note}), {self.grid.steps_per_quarter} steps per quarter, "
            f"{self.grid.bars} bar(s) per loop = {self.grid.steps} steps; "
            f"kit {self.kit.name!r} ({len(self.kit)} instruments)",
            f"files read: {len(self.files)}, skipped: {len(self.skipped)}"
            + (" (" + "; ".join(f"{n} {r}" for r, n in reasons.most_common()) + ")" if reasons else ""),
            f"loops kept: {len(self.loops)}, dropped with fewer than the minimum onsets: {self.sparse_loops}",
            f"notes: {self.notes}, unmapped by the kit: {self.unmapped}"
            + (f" ({100 * self.unmapped / self.notes:.1f}%)" if self.notes else ""),
        ]
        if self.copies > 1:
            lines.append(
                f"small set: duplicated {len(self.loops)} loops x{self.copies} = {len(self.loops) * self.copies}"
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "files_read": len(self.files),
            "files_skipped": len(self.skipped),
            "loops": len(self.loops),
            "sparse_loops_dropped": self.sparse_loops,
            "notes": self.notes,
            "notes_unmapped": self.unmapped,
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


def infer_meter(files: list[Path]) -> tuple[str, str]:
    """The most common first time signature among the files, and a note saying so."""
    votes: Counter[str] = Counter()
    for f in files:
        try:
            meter = file_meter(f)
        except MidiReadError:
            continue
        if meter:
            votes[meter] += 1
    if not votes:
        return "4/4", "no file states a meter: 4/4"
    meter, n = votes.most_common(1)[0]
    return meter, f"the most common, {n} of {sum(votes.values())} files"


def _read_loops(ds: Dataset, files: list[Path], force_meter: bool, min_onsets: int) -> Dataset:
    """Add the loops of ``files`` on ds's grid and kit to ``ds``, without those of fewer than
    ``min_onsets`` hits: the one way training, ``rvae eval`` and experiments read loops."""
    for f in files:
        try:
            got = read_midi(f, ds.grid, ds.kit, force=force_meter)
        except MidiReadError as e:
            ds.skipped.append((str(f), str(e)))
            continue
        ds.notes += got.notes
        ds.unmapped += got.unmapped
        kept = [g for g in got.loops if g.n_onsets >= min_onsets]
        ds.sparse_loops += len(got.loops) - len(kept)
        if kept:
            ds.files.append(f)
            ds.loops += kept
        else:
            ds.skipped.append((str(f), f"has no loop with at least {min_onsets} onsets"))
    return ds


def load_loops(
    paths: list[str | Path], grid: Grid, kit: Kit, force_meter: bool = False, min_onsets: int = DataConfig.min_onsets
) -> Dataset:
    """Loops of MIDI files and folders on a given grid and kit (a model's), read and dropped
    as ``load_dataset`` does for training, but never duplicated (``copies`` stays 1)."""
    files, skipped = find_midi_files(paths)
    return _read_loops(Dataset(grid, kit, skipped=skipped, meter_note="given"), files, force_meter, min_onsets)


def load_dataset(paths: list[str | Path], config: DataConfig | None = None) -> Dataset:
    """Read every MIDI file under ``paths`` into loops on one grid. Never raises for a bad
    file; raises ValueError for a bad setting (meter, kit)."""
    config = config or DataConfig()
    kit = load_kit(config.kit)
    files, skipped = find_midi_files(paths)
    if config.time_signature:
        meter, note = config.time_signature, "as asked"
    else:
        meter, note = infer_meter(files)
    grid = Grid(parse_time_signature(meter), config.steps_per_quarter, config.bars)
    ds = Dataset(grid, kit, skipped=skipped, meter_note=note, config=config)
    _read_loops(ds, files, config.force_meter, config.min_onsets)
    if ds.loops and len(ds.loops) < config.min_loops:
        ds.copies = -(-config.min_loops // len(ds.loops))
    return ds
