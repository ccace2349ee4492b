"""What Ray costs per run against the local pool: the same small study (project data, tiny
model, so the overhead is not lost in training time) on the local pool and on a local Ray with
the same number of CPUs; prints JSON.

    .venv/bin/python scripts/bench_ray.py [--runs 12] [--jobs 2] [--epochs 3]

For each backend: wall seconds of run_experiment (Ray's start included for the local Ray, and
given apart as start_s), the runs' own seconds (summed from their rows) and
overhead_per_run_s = (wall - runs' seconds / jobs) / runs: what each run costs beyond its own
training and scoring (process start, imports, scheduling, moving the row back). Load from
other programs inflates every figure alike; load_1min says how busy the machine was.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from rvae.experiment import load_experiment, run_experiment  # noqa: E402
from rvae.experiment.runner import LocalPool  # noqa: E402

STUDY = """
data = ["{data}"]
seeds = {seeds}
folds = 2
generation = false

[fixed]
epochs = {epochs}
hidden = 16
min_loops = 8

[grid]
steps_per_quarter = [4]
"""


def measure(name: str, folder: Path, text: str, backend) -> dict:
    path = folder / f"{name}.toml"
    path.write_text(text)
    cfg = load_experiment(path)
    t0 = time.perf_counter()
    result = run_experiment(cfg, backend=backend)
    wall = time.perf_counter() - t0
    seconds = sum(r["seconds"] for r in result.rows)
    return {
        "wall_s": round(wall, 2),
        "runs": len(result.rows),
        "ok": sum(r["status"] == "ok" for r in result.rows),
        "run_seconds_sum": round(seconds, 2),
        "load_1min": os.getloadavg()[0],
        "_seconds": seconds,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=12, help="runs per backend (2 folds x runs/2 seeds)")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes / Ray CPUs")
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args()
    import ray

    from rvae.experiment.ray_backend import RayBackend

    text = STUDY.format(data=REPO / "data" / "6-8", seeds=list(range(max(1, args.runs // 2))), epochs=args.epochs)
    out: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "jobs": args.jobs}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        out["local_pool"] = measure("pool", folder, text, LocalPool(args.jobs))
        t0 = time.perf_counter()
        ray.init(address="local", num_cpus=args.jobs, include_dashboard=False, log_to_driver=False)
        start = time.perf_counter() - t0
        try:
            out["ray_local"] = measure("ray", folder, text, RayBackend())
            out["ray_local"]["wall_s"] = round(out["ray_local"]["wall_s"] + start, 2)
            out["ray_local"]["start_s"] = round(start, 2)
            # A second study on the same Ray: its workers are warm (torch already imported).
            out["ray_warm"] = measure("ray_warm", folder, text.replace("[4]", "[2]"), RayBackend())
        finally:
            ray.shutdown()
    for key in ("local_pool", "ray_local", "ray_warm"):
        b = out[key]
        b["overhead_per_run_s"] = round((b["wall_s"] - b.pop("_seconds") / args.jobs) / b["runs"], 3)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
