"""Ableton Link clock: beats and their times from the Link session's timeline.

Link keeps tempo and bar phase shared among every peer on the network. Only the phase
within a *quantum* (here the bar's length in quarter notes: 4/4 → 4, 3/4 → 3, 6/8 → 3,
12/8 → 6, 5/4 → 5, 7/8 → 3.5) is common to the peers; the beat count itself is each
peer's own. Starting maps beat 0 to a bar line of the session (``requestBeatAtTime``):
alone, to the moment asked; with peers, to the next bar boundary of the session's phase,
as Live does (either at least ``START_MARGIN`` ahead, so that its first notes can be on
time). Loops then start on multiples of their length from beat 0.

Time: Link counts microseconds of CLOCK_MONOTONIC_RAW on Linux, the Player
``perf_counter`` seconds (CLOCK_MONOTONIC). Measured here they were 0.26 s apart and
drifted under 0.1 ppm in a minute. Measuring once is not enough: NTP slews CLOCK_MONOTONIC
(RAW never), by up to 500 ppm through adjtime, 0.5 ms a second. Every poll (100 a second)
is more than needed: the offset is measured again every ``OFFSET_EVERY`` seconds, so a
500 ppm slew moves it at most 0.05 ms between two measurements (a JACK period is 2.67).

Realtime: the clock thread ``poll``s once per turn: one captured session state
(``captureAppSessionState``: Link's client state behind a mutex its own thread holds
briefly; the audio-thread variant is not exposed to Python) and the peer count. Measured
(scripts/bench_link.py), while a peer changed tempo 20 times a second: p50 7-15 µs, p99
under 50 µs, max 0.25 ms. The status is numbers (``LinkStatus``): the window and the
status line format them. ``beat_at`` and ``time_of`` answer from that
snapshot (arithmetic on Link's SessionState, no lock). No Link callbacks are registered:
they would take the GIL on Link's own threads.

``link`` (LinkPython-extern, GPL-2.0-or-later) is imported here only, when a LinkClock is
made: the rest of rvae never imports it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from fractions import Fraction

from performer.clock import STOPPED, Transport
from rvae.errors import UserError

__all__ = ["MAX_LATENCY", "LinkClock", "LinkStatus", "bar_quantum", "check_options"]

logger = logging.getLogger(__name__)

MAX_LATENCY = 0.5  # seconds either way: more is a wrong unit, not a sound card
JUMP = 0.010  # seconds: the timeline moving this much under us (joining a session) relocates
# A peer's tempo change keeps the beat where it was at *their* moment of change; heard a
# network delay later, our beat at now moves by delay × Δtempo: up to this delay is not a jump.
TEMPO_NEWS_DELAY = 0.1
# Beat 0 goes to the first bar line at least this far ahead: a bar line a millisecond away
# (joining a session, starting among peers) would leave its first notes late; 20 ms covers
# the Player's turn and a busy machine's wait for the GIL (2 turns of Python's 5 ms switch).
START_MARGIN = 0.020
OFFSET_EVERY = 0.1  # seconds between measurements of Link's clock against perf_counter (see above)


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """What the window and the status line show of Link: numbers, published by the clock
    thread; ``str()`` (on the UI's side) makes the text."""

    peers: int
    bpm: float
    beat: int  # in the bar, from 1
    quantum: float

    def __str__(self) -> str:
        peers = f"{self.peers} peer" + ("" if self.peers == 1 else "s")
        return f"Link: {peers}, {self.bpm:.1f} BPM, beat {self.beat} of {self.quantum:g}"


def bar_quantum(time_signature: tuple[int, int]) -> float:
    """The bar's length in quarter notes: Link's quantum for a meter (7/8 → 3.5)."""
    num, den = time_signature
    return float(Fraction(4 * num, den))


def check_options(quantum: float | None, latency: float) -> None:
    """``--quantum`` (None: the meter's bar) and ``--latency`` (seconds), one sentence each
    when wrong; a config can check them before anything imports Link."""
    if quantum is not None and not (math.isfinite(quantum) and quantum > 0):
        raise UserError(f"--quantum {quantum:g}: the bar's length in quarter notes must be above 0")
    if not (math.isfinite(latency) and abs(latency) <= MAX_LATENCY):
        raise UserError(f"--latency {latency * 1000:g}: choose milliseconds between -500 and 500")


def _import_link():
    try:
        import link
    except ImportError:
        raise UserError("--clock link needs Ableton Link, an optional extra: pip install 'rvae[link]'") from None
    return link


class LinkClock:
    """Beat <-> time from the Link session: a ``performer.clock.Clock``, owned by the clock
    thread, which ``request``s and ``poll``s it every turn.

    ``quantum``: beats per bar for the phase (see ``bar_quantum``); ``latency``: seconds
    every event moves, positive = earlier, so rvae's MIDI lands with the peers' audio;
    ``start_stop``: share start and stop with peers that also have it on."""

    kind = "link"
    sends_clock = True  # the Link -> MIDI clock bridge: pulses, Start and Stop on the session's timeline
    leads = True
    shared = True  # peers change the tempo and start and stop: the controls follow (the Player sees to it)

    def __init__(self, bpm: float = 120.0, quantum: float = 4.0, latency: float = 0.0, start_stop: bool = True):
        check_options(quantum, latency)
        link = _import_link()
        self.quantum = float(quantum)
        self.latency = float(latency)
        self.start_stop = start_stop
        self._link = link.Link(float(bpm))
        self._link.startStopSyncEnabled = start_stop
        self._clock = self._link.clock()
        self.running = False
        self.peers = 0
        self._offset = 0.0  # Link's seconds minus perf_counter's
        self._measured = -math.inf  # perf_counter time of the last good measurement
        self._measure_offset()
        self._state = self._link.captureAppSessionState()
        self._session_playing = self._state.isPlaying()
        self._asked_running = False  # the controls' last wishes: only their changes act
        self._asked_bpm: float | None = None
        self._change: Transport | None = None  # what request did, for poll to say

    # --- session ----------------------------------------------------------------------
    def open(self) -> LinkClock:
        """Join the session (Link discovers peers from now on)."""
        self._link.enabled = True
        return self

    def close(self) -> None:
        self._link.enabled = False

    def __enter__(self) -> LinkClock:
        return self.open()

    def __exit__(self, *exc) -> None:
        self.close()

    def wait_for_peers(self, timeout: float = 1.0) -> int:
        """Wait up to ``timeout`` s for a peer (discovery took 2-500 ms here); not on the clock thread."""
        give_up = time.perf_counter() + timeout
        while self._link.numPeers() == 0 and time.perf_counter() < give_up:
            time.sleep(0.005)
        self.poll(time.perf_counter())
        return self.peers

    # --- time conversion --------------------------------------------------------------
    def _measure_offset(self) -> None:
        # A read pair more than 50 µs apart was interrupted (the GIL, the scheduler): keep
        # the last offset rather than one that may be off by the interruption.
        for _ in range(3):
            a = time.perf_counter()
            m = self._clock.micros()
            b = time.perf_counter()
            if b - a < 50e-6:
                self._offset = m * 1e-6 - (a + b) / 2
                self._measured = b
                return

    def _micros(self, t: float) -> int:
        return round((t + self._offset) * 1e6)

    def _seconds(self, micros: int) -> float:
        return micros * 1e-6 - self._offset

    # --- what the Player asks -----------------------------------------------------------
    @property
    def idle(self) -> str:
        """The status while not playing: with start/stop sync among peers, a start is everyone's."""
        return "waiting for Link start (space starts everyone)" if self.start_stop and self.peers else "stopped"

    @property
    def bpm(self) -> float:
        return self._state.tempo()

    @property
    def t0(self) -> float:
        """The time of beat 0."""
        return self.time_of(0.0)

    def beat_at(self, t: float) -> float:
        return self._state.beatAtTime(self._micros(t + self.latency), self.quantum)

    def time_of(self, beat: float) -> float:
        return self._seconds(self._state.timeAtBeat(beat, self.quantum)) - self.latency

    def phase(self, t: float) -> float:
        """Where ``t`` falls in the session's bar, in beats [0, quantum)."""
        return self._state.phaseAtTime(self._micros(t + self.latency), self.quantum)

    def horizon(self, t: float) -> float:
        return self.beat_at(t)

    def request(self, running: bool, bpm: float, now: float) -> None:
        """The controls' wishes, every turn. Only their changes act: the session holds the
        level (a peer's tempo or Stop must not be undone by controls that still say 120 BPM,
        running). A changed tempo goes to the session, unless it is the session's own (the
        controls following it); start and stop too, with sync on."""
        if self._asked_bpm is not None and bpm != self._asked_bpm and bpm != self.bpm:
            self.set_bpm(bpm, now)
        self._asked_bpm = bpm
        if running != self._asked_running:
            self._asked_running = running
            if running and not self.running:
                self.start(now)
                self._change = Transport(True, 0.0)
            elif not running and self.running:
                self.stop(now)
                self._change = STOPPED

    def status(self, t: float) -> LinkStatus:
        """For the window and the status line: peers, tempo, where ``t`` is in the bar, as
        numbers; formatting them is the UI's work, not the clock thread's."""
        return LinkStatus(self.peers, self.bpm, math.floor(self.phase(t)) + 1, self.quantum)

    def poll(self, now: float) -> Transport | None:
        """Take the session's news, once per turn; returns what the transport did: started
        from beat 0 (our start; a peer's start: beat 0 is then the bar where it falls; or the
        timeline moved under us, as on joining a running session: beat 0 is the next bar
        line), stopped (ours, or a peer's), or None."""
        change, self._change = self._change, None
        if time.perf_counter() - self._measured >= OFFSET_EVERY:
            self._measure_offset()
        before, bpm = self.beat_at(now), self.bpm
        self._state = self._link.captureAppSessionState()
        self.peers = self._link.numPeers()
        news = None
        if self.start_stop and self._state.isPlaying() != self._session_playing:
            self._session_playing = self._state.isPlaying()
            if self._session_playing:
                self._state.requestBeatAtStartPlayingTime(0.0, self.quantum)
                self._commit()
                self.running, news = True, "a peer started"
            elif self.running:
                self.running, news = False, "a peer stopped"
        elif self.running and abs(self.beat_at(now) - before) * 60.0 > (
            JUMP * self.bpm + TEMPO_NEWS_DELAY * abs(self.bpm - bpm)
        ):
            self._request_zero(now)
            news = "the session's timeline moved (joined)"
        if news:
            logger.info("Link: %s; beat 0 at %.6f, %.2f BPM, %d peers", news, self.t0, self.bpm, self.peers)
            change = Transport(True, 0.0) if self.running else STOPPED
        return change

    def start(self, now: float) -> None:
        """Play from beat 0: START_MARGIN from now if alone, else at the session's first bar
        line after that. With
        start/stop sync the session plays from now on: peers with theirs on start too, and
        their Stop reaches us. (A peer joining a playing session is not told it plays: Link
        shares a start or stop when it happens, so starting says so.)"""
        self._state = self._link.captureAppSessionState()
        if self.start_stop:
            at = self._micros(now + START_MARGIN + self.latency)
            self._state.setIsPlayingAndRequestBeatAtTime(True, at, 0.0, self.quantum)
            self._session_playing = True
            self._commit()
        else:
            self._request_zero(now)
        self.running = True

    def stop(self, now: float | None = None) -> None:
        """Stop playing; with start/stop sync the peers stop too."""
        self.running = False
        if self.start_stop:
            self._state = self._link.captureAppSessionState()
            self._state.setIsPlaying(False, self._micros(time.perf_counter() if now is None else now))
            self._session_playing = False
            self._commit()

    def set_bpm(self, bpm: float, now: float) -> None:
        """Set the session's tempo, for every peer, from ``now``; the beat at ``now`` keeps its place."""
        self._state = self._link.captureAppSessionState()
        self._state.setTempo(float(bpm), self._micros(now + self.latency))
        self._commit()

    def _request_zero(self, now: float) -> None:
        self._state.requestBeatAtTime(0.0, self._micros(now + START_MARGIN + self.latency), self.quantum)
        self._commit()

    def _commit(self) -> None:
        self._link.commitAppSessionState(self._state)
        # the committed state is what Link answers from now on; re-read it so that the
        # next poll compares against the timeline as Link keeps it
        self._state = self._link.captureAppSessionState()
