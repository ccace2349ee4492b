"""What the performer asks for, from any source: keys and mouse (ui), OSC, MIDI CC.

``ControlState`` is an immutable snapshot; ``Controls`` holds the latest one. Writers
(the window, the OSC server thread, the MIDI input callback) only replace values; readers
(the decode worker, the clock thread, the display) take the snapshot when they need it.
"""

from __future__ import annotations

import dataclasses
import threading
from dataclasses import dataclass, field

__all__ = ["ControlState", "Controls"]


@dataclass(frozen=True)
class ControlState:
    z: tuple[float, float] = (0.0, 0.0)  # cursor in the latent plane
    threshold: float = 0.5  # onset probability that makes a hit
    noise: float = 0.0  # random jitter of z each bar, in latent units (R-VAE's noise range)
    velocity: str = "decoded"  # "decoded", or "fixed" at fixed_velocity
    fixed_velocity: int = 100
    microtiming: float = 1.0  # 0 = exactly on the grid, 1 = as decoded
    mutes: frozenset[int] = field(default_factory=frozenset)  # kit classes silenced
    swap: str = "bar"  # when a new pattern takes over: tick, beat or bar
    bpm: float = 120.0  # internal clock tempo
    running: bool = True  # start / stop
    panic: int = 0  # raised by one for every panic request


class Controls:
    """The latest ControlState; ``version`` grows with every change, so a reader can tell
    cheaply whether anything moved."""

    def __init__(self, initial: ControlState | None = None) -> None:
        self._lock = threading.Lock()
        self._state = initial or ControlState()
        self.version = 0

    def get(self) -> ControlState:
        return self._state  # replaced whole, never mutated: reading needs no lock

    def update(self, **changes) -> ControlState:
        with self._lock:
            self._state = dataclasses.replace(self._state, **changes)
            self.version += 1
            return self._state

    def toggle_mute(self, instrument: int) -> ControlState:
        with self._lock:
            mutes = self._state.mutes ^ {instrument}
            self._state = dataclasses.replace(self._state, mutes=frozenset(mutes))
            self.version += 1
            return self._state

    def request_panic(self) -> ControlState:
        with self._lock:
            self._state = dataclasses.replace(self._state, panic=self._state.panic + 1)
            self.version += 1
            return self._state
