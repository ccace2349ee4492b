"""Train the models that ship in checkpoints/, so every command works on a fresh clone.

  groove-4-4.pt  4/4, from the 12 eight-bar clips of ../shared/data/groove-clips/medium
                 (Groove MIDI Dataset, CC BY 4.0: real drummers' feel); when that is absent,
                 from the project's own 4/4 clips in data/
  demo-6-8.pt    6/8, from data/6-8
  demo-12-8.pt   12/8, from data/12-8_shuffle
  demo-7-8.pt    7/8, from data/7-8

Seed 0 and default settings throughout, so a rerun on the same machine gives the same files.
Usage: python scripts/train_bundled.py [--force]   (existing checkpoints are kept without --force)
"""

from __future__ import annotations

import sys
from pathlib import Path

from rvae.dataset import DataConfig
from rvae.train import train_files

ROOT = Path(__file__).resolve().parents[1]
MEDIUM = ROOT.parent / "shared" / "data" / "groove-clips" / "medium"

MODELS = {
    "groove-4-4.pt": ([MEDIUM] if MEDIUM.exists() else sorted(ROOT.glob("data/4-4_*")), "4/4"),
    "demo-6-8.pt": ([ROOT / "data" / "6-8"], "6/8"),
    "demo-12-8.pt": ([ROOT / "data" / "12-8_shuffle"], "12/8"),
    "demo-7-8.pt": ([ROOT / "data" / "7-8"], "7/8"),
}


def main(argv: list[str]) -> int:
    force = "--force" in argv
    for name, (paths, meter) in MODELS.items():
        out = ROOT / "checkpoints" / name
        if out.exists() and not force:
            print(f"{out} exists (pass --force to retrain it)")
            continue
        ckpt = train_files(paths, out, DataConfig(time_signature=meter), progress=False)
        s = ckpt.summary
        print(
            f"{name}: {s.data['loops']} loops from {s.data['files_read']} files, "
            f"{s.epochs} epochs in {s.seconds} s, {ckpt.n_kept_loops} loops kept, square ±{ckpt.extent:g} -> {out}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
