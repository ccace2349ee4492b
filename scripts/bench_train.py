"""Training speed, memory and quality on fixed sets of the shared Groove MIDI subset.

Prints one JSON object per set. Each set runs in a fresh process, so that peak memory is
that set's alone. Sets (all 4/4, from ../shared/data, CC BY 4.0, never copied here):
  small   groove-clips/small: 12 clips of 2 bars (R-VAE's minimal-data case)
  medium  groove-clips/medium: the same 12 performances, 8 bars each
  full    the 12 full performances of groove-clips/dozen.txt (~800 bars), plus held-out F1
          on other 4/4 beat files of the subset that are not among the twelve
  ingest  the whole subset (~1,000 files): ingest time, then training memory at defaults

Usage: python scripts/bench_train.py [--threads N] [--busy K] [small medium full ingest]
  --threads N  torch threads for training (default: TrainConfig's)
  --busy K     a busy machine: each set (default: small and medium) runs idle, then with K
               busy-looping processes alongside; prints both times and their ratio
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
SETS = ("small", "medium", "full", "ingest")
# Spins a core; checks now and then that the benchmark still runs, so none outlives it.
BUSY_LOOP = """
import os
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(1_000_000):
        pass
"""


def paths_for(name: str) -> list[str | Path]:
    clips = SHARED / "groove-clips"
    if name in ("small", "medium"):
        return [clips / name]
    if name == "full":
        return [SHARED / "groove" / line.strip() for line in (clips / "dozen.txt").read_text().split() if line.strip()]
    return [SHARED / "groove"]


def held_out_files(n: int = 24) -> list[str | Path]:
    """4/4 beat files of the subset from other sessions than the twelve, in a fixed order."""
    dozen = set(paths_for("full"))
    files = sorted(
        p for p in (SHARED / "groove").rglob("*_beat_4-4.mid") if p not in dozen and "session1" not in str(p)
    )
    return [*files[:: max(1, len(files) // n)][:n]]


def run(name: str, threads: int | None) -> dict:
    from rvae.dataset import load_dataset
    from rvae.metrics import evaluate
    from rvae.train import TrainConfig, train

    cfg = TrainConfig() if threads is None else TrainConfig(threads=threads)
    t0 = time.perf_counter()
    ds = load_dataset(paths_for(name))
    ingest = time.perf_counter() - t0
    out: dict = {"set": name, "files": len(ds.files), "loops": len(ds.loops), "ingest_seconds": round(ingest, 2)}
    t0, cpu0 = time.perf_counter(), time.process_time()
    ckpt = train(ds, cfg=cfg, progress=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    s = ckpt.summary
    out |= {
        "threads": cfg.threads,
        "seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),  # about seconds x threads when the cores are free; less, waiting for them
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


def in_child(name: str, threads: int | None) -> dict:
    """``run`` in a fresh process: its result, or the last line of its error."""
    argv = [sys.executable, __file__, "--one", name] + ([] if threads is None else ["--threads", str(threads)])
    res = subprocess.run(argv, capture_output=True, text=True)
    try:
        return json.loads(res.stdout)
    except json.JSONDecodeError:
        return {"set": name, "error": res.stderr.strip().splitlines()[-1:]}


def busy(name: str, threads: int | None, k: int) -> dict:
    """The set idle, then with ``k`` busy-looping processes alongside (they start first and
    are stopped after): a laptop whose other programs keep its cores busy."""
    idle = in_child(name, threads)
    loops = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(k)]
    try:
        time.sleep(0.5)  # every loop spinning before training starts
        loaded = in_child(name, threads)
    finally:
        for p in loops:
            p.kill()
            p.wait()
    out = {"set": name, "busy_processes": k, "threads": idle.get("threads")}
    out |= {"idle_seconds": idle.get("seconds"), "busy_seconds": loaded.get("seconds")}
    out |= {"idle_cpu_seconds": idle.get("cpu_seconds"), "busy_cpu_seconds": loaded.get("cpu_seconds")}
    if idle.get("seconds") and loaded.get("seconds"):
        out["busy_over_idle"] = round(loaded["seconds"] / idle["seconds"], 2)
    return out | {k: v for k, v in loaded.items() if k == "error"}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description="Training speed, memory and quality on the shared Groove subset.")
    p.add_argument("sets", nargs="*", metavar="SET", help=f"any of {', '.join(SETS)}")
    p.add_argument("--threads", type=int, default=None, help="torch threads for training (default: TrainConfig's)")
    p.add_argument("--busy", type=int, default=0, metavar="K", help="also run with K busy processes alongside")
    p.add_argument("--one", help=argparse.SUPPRESS)  # a child process: run this set, print its JSON
    args = p.parse_args(argv)
    if not (SHARED / "groove").exists():
        print(json.dumps({"skipped": f"{SHARED / 'groove'} is absent: the shared Groove MIDI subset is needed"}))
        return 0
    if args.one:
        print(json.dumps(run(args.one, args.threads)))
        return 0
    for name in args.sets:
        if name not in SETS:
            p.error(f"unknown set {name!r}; choose from {', '.join(SETS)}")
    for name in args.sets or (("small", "medium") if args.busy else SETS):
        result = busy(name, args.threads, args.busy) if args.busy else in_child(name, args.threads)
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
