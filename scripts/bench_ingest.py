#!/usr/bin/env python3
"""Ingest figures, printed as JSON: how many drum notes reading keeps from real-world files, and
how long the Groove subset takes to read.

- ``realworld``: per folder of ../shared/data/realworld (each a public repository's MIDI
  files), read as ``rvae train FOLDER`` reads it (meter inferred, default kit): drum notes the
  kit maps (channel 10's, or every channel's in a file with none there), those kept as hits of
  the loops trained on, where the rest went, files read and skipped with their reasons, and
  files whose note count differs from mido's (among those mido reads at all).
- ``groove``: seconds to read ../shared/data/groove into loops (median of 3), and to parse
  its files alone with this reader, symusic and mido.

Usage: python scripts/bench_ingest.py [--shared DIR] [-o FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import mido
import numpy as np

from rvae.dataset import DataConfig, find_midi_files, load_dataset
from rvae.kit import load_kit
from rvae.midi_io import MidiReadError, parse_midi

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def mido_note_ons(path: Path) -> int | None:
    """Note-ons with a velocity above 0, as mido reads them; None where mido cannot read the file."""
    try:
        tracks = mido.MidiFile(path, clip=True).tracks
    except Exception:  # mido raises many kinds for broken files: any of them means "cannot"
        return None
    return sum(1 for t in tracks for m in t if m.type == "note_on" and m.velocity > 0)


def folder_figures(folder: Path, config: DataConfig) -> dict:
    kit = load_kit(config.kit)
    lookup = kit.lookup()
    files, _ = find_midi_files([folder])
    mapped = 0
    differ = []
    for f in files:
        try:
            notes = parse_midi(f)
        except MidiReadError:
            notes = None
        if notes is not None:
            mapped += int((lookup[notes.pitch[notes.drums(config.all_channels)]] >= 0).sum())
        want = mido_note_ons(f)
        if want is not None and (notes is None or len(notes.tick) != want):
            differ.append(str(f.relative_to(folder)))
    ds = load_dataset([folder], config)
    kept = sum(g.n_onsets for g in ds.loops)
    reasons = Counter(reason.split(" (")[0] for _, reason in ds.skipped)
    return {
        "files": len(files),
        "files_read": len(ds.files),
        "files_skipped": len(ds.skipped),
        "skipped_because": dict(reasons.most_common()),
        "meter": ds.grid.meter,
        "notes_mapped": mapped,
        "notes_kept": kept,
        "retention": round(kept / mapped, 3) if mapped else None,
        "notes_merged_as_layers": ds.merged,
        "notes_in_other_meters": ds.other_meter_hits,
        "bars_in_other_meters": dict(ds.other_meters),
        "malformed_messages_skipped": ds.bad_messages,
        "lines_said": len(ds.said),
        "map_warning": ds.map_looks_wrong(),
        "files_whose_note_count_differs_from_mido": differ,
    }


def timed(fn, repeat: int = 1) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3)


def groove_figures(groove: Path) -> dict:
    files, _ = find_midi_files([groove])
    datas = [f.read_bytes() for f in files]
    out: dict = {"files": len(files)}
    ds = load_dataset([groove])
    out["loops"], out["notes"], out["files_read"] = len(ds.loops), ds.notes, len(ds.files)
    out["load_dataset_s"] = timed(lambda: load_dataset([groove]), repeat=3)
    out["parse_s"] = {"rvae": timed(lambda: [parse_midi(f) for f in files], repeat=3)}
    out["note_ons"] = {"rvae": sum(len(parse_midi(f).tick) for f in files)}
    try:
        import symusic

        out["parse_s"]["symusic"] = timed(lambda: [symusic.Score.from_midi(d) for d in datas], repeat=3)
        # symusic pairs note-ons with later note-offs: the unmatched ones are not notes to it
        scores: list[Any] = [symusic.Score.from_midi(d) for d in datas]  # symusic's types do not say note_num
        out["note_ons"]["symusic"] = sum(s.note_num() for s in scores)
    except ImportError:
        pass
    counts: list[int] = []
    out["parse_s"]["mido"] = timed(lambda: counts.extend(np.array([mido_note_ons(f) or 0 for f in files])))
    out["note_ons"]["mido"] = int(sum(counts))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--shared", type=Path, default=SHARED, help=f"the shared data folder (default {SHARED})")
    p.add_argument("-o", "--output", type=Path, help="also write the JSON here")
    args = p.parse_args()
    realworld, groove = args.shared / "realworld", args.shared / "groove"
    report: dict = {}
    if realworld.exists():
        report["realworld"] = {
            d.name: folder_figures(d, DataConfig()) for d in sorted(realworld.iterdir()) if d.is_dir()
        }
        totals = [v for v in report["realworld"].values()]
        mapped, kept = sum(v["notes_mapped"] for v in totals), sum(v["notes_kept"] for v in totals)
        report["realworld_total"] = {"notes_mapped": mapped, "notes_kept": kept, "retention": round(kept / mapped, 3)}
    else:
        print(f"{realworld} is absent: no real-world figures", file=sys.stderr)
    if groove.exists():
        report["groove"] = groove_figures(groove)
    else:
        print(f"{groove} is absent: no ingest time", file=sys.stderr)
    text = json.dumps(report, indent=1)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
