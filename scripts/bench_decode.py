"""Decoding speed: one z (what the performer does on every cursor move) and the whole
30x30 latent map (what it redraws when the threshold changes). Prints JSON.

Usage: python scripts/bench_decode.py [CHECKPOINT]   (default: the bundled 4/4 model)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from rvae.checkpoint import load_checkpoint
from rvae.latent import decode_probs, latent_map
from rvae.picture import map_image

ROOT = Path(__file__).resolve().parents[1]


def percentiles(seconds: list[float]) -> dict:
    ms = np.array(seconds) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def main(argv: list[str]) -> int:
    torch.set_num_threads(2)
    path = Path(argv[0]) if argv else ROOT / "checkpoints" / "groove-4-4.pt"
    ckpt = load_checkpoint(path)
    rng = np.random.default_rng(0)
    for _ in range(50):  # warm up allocator and kernels
        decode_probs(ckpt, rng.standard_normal(2))
    one = []
    for _ in range(2000):
        z = rng.standard_normal(2)
        t = time.perf_counter()
        decode_probs(ckpt, z)
        one.append(time.perf_counter() - t)
    maps, pictures = [], []
    for _ in range(30):
        t = time.perf_counter()
        probs = latent_map(ckpt, 30)
        maps.append(time.perf_counter() - t)
        t = time.perf_counter()
        map_image(ckpt, probs)
        pictures.append(time.perf_counter() - t)
    print(
        json.dumps(
            {
                "checkpoint": path.name,
                "params": ckpt.model.n_params(),
                "file_mb": round(path.stat().st_size / 1e6, 2),
                "decode_one": percentiles(one),
                "map_30x30": percentiles(maps),
                "map_picture": percentiles(pictures),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
