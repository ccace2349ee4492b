"""Training speed, memory and quality on fixed sets of the shared Groove MIDI subset.

Prints one JSON object per set. Each set runs in a fresh process, so that peak memory is
that set's alone. Sets (all 4/4, from ../shared/data, CC BY 4.0, never copied here):
  small   groove-clips/small: 12 clips of 2 bars (R-VAE's minimal-data case)
  medium  groove-clips/medium: the same 12 performances, 8 bars each
  full    the 12 full performances of groove-clips/dozen.txt (~800 bars), plus held-out F1
          on other 4/4 beat files of the subset that are not among the twelve
  ingest  the whole subset (~1,000 files): ingest time, then training memory at defaults

Usage: python scripts/bench_train.py [small medium full ingest]
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = ("small", "medium", "full", "ingest")


def paths_for(name: str) -> list[Path]:
    clips = SHARED / "groove-clips"
    if name in ("small", "medium"):
        return [clips / name]
    if name == "full":
        return [SHARED / "groove" / line.strip() for line in (clips / "dozen.txt").read_text().split() if line.strip()]
    return [SHARED / "groove"]


def held_out_files(n: int = 24) -> list[Path]:
    """4/4 beat files of the subset from other sessions than the twelve, in a fixed order."""
    dozen = set(paths_for("full"))
    files = sorted(
        p for p in (SHARED / "groove").rglob("*_beat_4-4.mid") if p not in dozen and "session1" not in str(p)
    )
    return files[:: max(1, len(files) // n)][:n]


def run(name: str) -> dict:
    import torch

    from rvae.dataset import load_dataset
    from rvae.metrics import evaluate
    from rvae.train import train

    torch.set_num_threads(2)
    t0 = time.perf_counter()
    ds = load_dataset(paths_for(name))
    ingest = time.perf_counter() - t0
    out: dict = {"set": name, "files": len(ds.files), "loops": len(ds.loops), "ingest_seconds": round(ingest, 2)}
    t0 = time.perf_counter()
    ckpt = train(ds, progress=False)
    seconds = time.perf_counter() - t0
    s = ckpt.summary
    out |= {
        "seconds": round(seconds, 2),
        "epochs": s.epochs,
        "updates": s.updates,
        "seconds_per_epoch": round(s.seconds / max(1, s.epochs), 4),
        "val_loops": s.val_loops,
    }
    if name != "ingest":
        m = evaluate(ckpt, ds.loops)
        out |= {"train_f1": round(m["onset_f1"], 4), "train_f1_tolerant": round(m["onset_f1_tolerant"], 4)}
    if name == "full":
        held = load_dataset(held_out_files())
        m = evaluate(ckpt, held.loops)
        out |= {
            "held_out_files": len(held.files),
            "held_out_loops": len(held.loops),
            "held_out_f1": round(m["onset_f1"], 4),
            "held_out_f1_tolerant": round(m["onset_f1_tolerant"], 4),
        }
    out["peak_memory_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    return out


def main(argv: list[str]) -> int:
    if not (SHARED / "groove").exists():
        print(json.dumps({"skipped": f"{SHARED / 'groove'} is absent: the shared Groove MIDI subset is needed"}))
        return 0
    if len(argv) == 2 and argv[0] == "--one":
        print(json.dumps(run(argv[1])))
        return 0
    for name in argv or SETS:
        if name not in SETS:
            print(f"unknown set {name!r}; choose from {', '.join(SETS)}", file=sys.stderr)
            return 2
        res = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True)
        print(
            res.stdout.strip() or json.dumps({"set": name, "error": res.stderr.strip().splitlines()[-1:]}), flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
