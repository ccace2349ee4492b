"""The decode worker: turns the latest controls into a finished Pattern, off the clock thread.

Cursor moves faster than decoding coalesce: each turn decodes only the newest state. With
noise above 0, z is jittered afresh at every new bar (as R-VAE's noise range), so the
groove breathes around the cursor while it stands still.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
from collections.abc import Callable, Iterator

import numpy as np
import torch

from performer.control import Controls, ControlState
from performer.sequencer import Mailbox, Pattern, PlayerView, make_pattern
from rvae.checkpoint import Checkpoint
from rvae.generate import to_groove
from rvae.latent import decode_probs

__all__ = ["DECODE_THREADS", "DENSITY_ODDS", "DecodeWorker", "decode_threads", "instrument_thresholds", "pattern_for"]

logger = logging.getLogger(__name__)

# Torch threads while performing. One: a decode is one point through a small MLP, too little
# work to share, and every extra thread competes for the cores with the clock thread and the
# DAW beside us. Measured on the 2-core machine under load: one point 0.38 ms with one
# thread, 6.2 ms with two; the window's 30x30 map 69 ms and 161 ms. torch's setting is the
# process's, so the performance sets it for its whole run (``decode_threads``).
DECODE_THREADS = 1

DENSITY_ODDS = 1e4  # density ±1 divides / multiplies the odds a step needs to sound by this


def instrument_thresholds(threshold: float, density: tuple[float, ...], instruments: int) -> np.ndarray:
    """The onset threshold of each kit class, (instruments, 1): ``threshold`` moved by that
    class's density offset d (-1..1; missing = 0, the model's own).

    The offset moves the threshold's log-odds, not the threshold itself: logit(t_i) =
    logit(t) - d * ln(DENSITY_ODDS). So the threshold never leaves (0, 1) whatever the
    global one is (an added offset would pin it at 0 or 1 for part of the knob's travel:
    every step, or none), steps join or leave in the order of the model's own confidence,
    and the knob does as much near a high global threshold as near a low one. The odds
    factor is measured: on the bundled 4/4 model at threshold 0.5, d = -1 keeps a tenth of
    the hits (hats a fifth), d = +1 plays two to three times as many.
    """
    d = np.zeros(instruments)
    k = min(len(density), instruments)
    d[:k] = density[:k]
    t = min(max(float(threshold), 1e-9), 1 - 1e-9)
    moved = 1.0 / (1.0 + np.exp(d * math.log(DENSITY_ODDS) - math.log(t / (1 - t))))
    return np.where(d == 0, float(threshold), moved)[:, None]  # 0 is exactly the model's own, 0 and 1 too


@contextlib.contextmanager
def decode_threads(n: int = DECODE_THREADS) -> Iterator[None]:
    """torch uses ``n`` threads inside; the caller's setting is restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def pattern_for(ckpt: Checkpoint, st: ControlState, z: tuple[float, ...], serial: int, bpm: float) -> Pattern:
    """Decode z under the given controls into a ready-to-play Pattern."""
    thresholds = instrument_thresholds(st.threshold, st.density, len(ckpt.kit))
    groove = to_groove(ckpt, decode_probs(ckpt, np.asarray(z, np.float32))[0], thresholds, bpm)
    velocity = st.fixed_velocity if st.velocity == "fixed" else None
    return make_pattern(groove, st.mutes, velocity, st.microtiming, z, serial)


class DecodeWorker:
    """Owns the model while performing. ``view`` gives the playhead, to know the bar."""

    def __init__(
        self,
        ckpt: Checkpoint,
        controls: Controls,
        mailbox: Mailbox,
        view: Callable[[], PlayerView],
        seed: int = 0,
        poll: float = 0.004,
    ) -> None:
        self.ckpt, self.controls, self.mailbox, self.view = ckpt, controls, mailbox, view
        self.poll = poll
        self.rng = np.random.default_rng(seed)
        self.stop_event = threading.Event()
        self.serial = 0
        self.decoded = 0  # patterns made, for the status and the benchmark
        self._last_key: tuple | None = None
        self._decoded_with: Checkpoint | None = None  # the model of the last pattern
        self._thread: threading.Thread | None = None

    def set_model(self, ckpt: Checkpoint) -> None:
        """Decode with ``ckpt`` from the next turn on; its first pattern takes over at a bar
        line (learning on stage swaps models through here, from its own thread)."""
        self.ckpt = ckpt

    def _key(self, st: ControlState) -> tuple:
        bar = None
        if st.noise > 0:
            bar = math.floor(self.view().beat / float(self.ckpt.grid.quarters_per_bar))
        return (st.z, st.threshold, st.density, st.mutes, st.velocity, st.fixed_velocity, st.microtiming, st.noise, bar)

    def turn(self) -> Pattern | None:
        """Decode if anything changed since the last turn; publish and return the pattern."""
        st = self.controls.get()
        ckpt = self.ckpt  # read once: set_model may replace it meanwhile
        key = (id(ckpt), *self._key(st))
        if key == self._last_key:
            return None
        self._last_key = key
        z = tuple(float(v) for v in st.z)
        if st.noise > 0:
            z = tuple(float(v) for v in np.asarray(z) + self.rng.normal(0.0, st.noise, len(z)))
        self.serial += 1
        pattern = pattern_for(ckpt, st, z, self.serial, st.bpm)
        if self._decoded_with is not None and ckpt is not self._decoded_with:
            pattern = dataclasses.replace(pattern, swap="bar")  # another model: at a bar line, whatever --swap says
        self._decoded_with = ckpt
        self.mailbox.put(pattern)
        self.decoded += 1
        return pattern

    def run(self) -> None:
        while not self.stop_event.is_set():
            try:
                self.turn()
            except Exception:
                logger.exception("decoding failed; keeping the last pattern")
            self.stop_event.wait(self.poll)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="rvae-decode", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
