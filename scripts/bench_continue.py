"""Continue training (rvae.train.continue_training, `rvae train --init`): time and quality.

A base model is trained with default settings on ~100 one-bar 4/4 loops (the 12 eight-bar
clips of ../shared/data/groove-clips/medium, 93 loops, as the bundled groove-4-4.pt; else
the project's data/4-4_* clips); then it learns 8 new bars (the first 8 of a drummer-7
hip-hop beat from ../shared/data/groove, else data/4-4_*'s last clip), one torch thread, as
the performer's child training process does, --repeats times. Prints JSON: the size of the
kept loops, the continuation's seconds (each run, median, max), and onset F1 of the old and
the new loops before and after. Seconds are wall clock (what a learn waits) and CPU time
of the one thread (what it takes with a core to itself), with the load average beside them.

Usage: python scripts/bench_continue.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rvae.checkpoint import save_checkpoint
from rvae.dataset import DataConfig, load_dataset, load_loops
from rvae.groove import pack_hits
from rvae.metrics import evaluate
from rvae.train import continue_training, train

ROOT = Path(__file__).resolve().parents[1]
MEDIUM = ROOT.parent / "shared" / "data" / "groove-clips" / "medium"
NEW = ROOT.parent / "shared" / "data" / "groove" / "drummer7" / "session1" / "39_hiphop_100_beat_4-4.mid"


def f1(ckpt, loops) -> float:
    return round(float(evaluate(ckpt, loops)["onset_f1"]), 4)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    demo = sorted(ROOT.glob("data/4-4_*"))
    base_paths = [MEDIUM] if MEDIUM.exists() else demo[:-1]
    new_path = NEW if NEW.exists() else demo[-1]
    ds = load_dataset(base_paths, DataConfig(time_signature="4/4"))
    t0 = time.perf_counter()
    base = train(ds, progress=False)
    base_seconds = time.perf_counter() - t0
    new = load_loops([new_path], ds.grid, ds.kit).loops[:8]
    packed = pack_hits(ds.loops)
    buf = io.BytesIO()
    torch.save({k: v if isinstance(v, list) else torch.from_numpy(np.asarray(v)) for k, v in packed.items()}, buf)
    runs, cpu, out = [], [], None
    for _ in range(args.repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        out = continue_training(base, new)
        runs.append(round(time.perf_counter() - t0, 3))
        cpu.append(round(time.process_time() - c0, 3))  # what it takes with a core to itself
    assert out is not None
    with tempfile.TemporaryDirectory() as tmp:  # the checkpoint file with and without its loops
        sizes = [
            save_checkpoint(dataclasses.replace(base, kept=k), Path(tmp) / "c.pt").stat().st_size
            for k in (base.kept, None)
        ]
    result = {
        "base": {"data": [str(p) for p in base_paths], "loops": len(ds.loops), "hits": len(packed["hits"])},
        "base_train_seconds": round(base_seconds, 2),
        "base_updates": base.summary.updates,
        "kept_loops_bytes": len(buf.getvalue()),
        "checkpoint_bytes_with_loops": sizes[0],
        "checkpoint_bytes_without": sizes[1],
        "kept_loops_bytes_dense_float32": int(sum(3 * g.onsets.size * 4 for g in ds.loops)),
        "new": {"file": str(new_path), "loops": len(new)},
        "continue_updates": out.summary.updates,
        "continue_seconds": runs,
        "continue_seconds_median": statistics.median(runs),
        "continue_seconds_max": max(runs),
        "continue_cpu_seconds": cpu,
        "load_average": [round(v, 2) for v in os.getloadavg()],
        "onset_f1_old_before": f1(base, ds.loops),
        "onset_f1_old_after": f1(out, ds.loops),
        "onset_f1_new_before": f1(base, new),
        "onset_f1_new_after": f1(out, new),
        "extent_before": base.extent,
        "extent_after": out.extent,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
