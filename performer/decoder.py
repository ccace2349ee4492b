"""The decode worker: turns the latest controls into a finished Pattern, off the clock thread.

Cursor moves faster than decoding coalesce: each turn decodes only the newest state. With
noise above 0, z is jittered afresh at every new bar (as R-VAE's noise range), so the
groove breathes around the cursor while it stands still.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable

import numpy as np

from performer.control import Controls, ControlState
from performer.sequencer import Mailbox, Pattern, PlayerView, make_pattern
from rvae.checkpoint import Checkpoint
from rvae.generate import to_groove
from rvae.latent import decode_probs

__all__ = ["DecodeWorker", "pattern_for"]

logger = logging.getLogger(__name__)


def pattern_for(ckpt: Checkpoint, st: ControlState, z: tuple[float, ...], serial: int, bpm: float) -> Pattern:
    """Decode z under the given controls into a ready-to-play Pattern."""
    groove = to_groove(ckpt, decode_probs(ckpt, np.asarray(z, np.float32))[0], st.threshold, bpm)
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
        self._thread: threading.Thread | None = None

    def _key(self, st: ControlState) -> tuple:
        bar = None
        if st.noise > 0:
            bar = math.floor(self.view().beat / float(self.ckpt.grid.quarters_per_bar))
        return (st.z, st.threshold, st.mutes, st.velocity, st.fixed_velocity, st.microtiming, st.noise, bar)

    def turn(self) -> Pattern | None:
        """Decode if anything changed since the last turn; publish and return the pattern."""
        st = self.controls.get()
        key = self._key(st)
        if key == self._last_key:
            return None
        self._last_key = key
        z = tuple(float(v) for v in st.z)
        if st.noise > 0:
            z = tuple(float(v) for v in np.asarray(z) + self.rng.normal(0.0, st.noise, len(z)))
        self.serial += 1
        pattern = pattern_for(self.ckpt, st, z, self.serial, st.bpm)
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
