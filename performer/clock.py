"""Clocks: where beats fall in time, and what the transport does. ``sequencer.Player`` plays on
any object that keeps the ``Clock`` contract; it never asks which kind of clock it has.

Internal clock: tick k of 24 per quarter sounds at ``t0 + k * 60 / (24 * bpm)``, computed
from the start time and the tick count, never by adding up sleeps, so it cannot drift; a
tempo change moves ``t0`` so that the current beat keeps its place.

MIDI clock follower: every 0xF8 pulse carries its time of arrival (the input's own, on
``perf_counter``'s clock: ``ports.Arrival``) and re-anchors the position: pulse n is beat
n / 24. The tempo estimated from the arrivals only places what lies between pulses
(microtiming): a hit on a pulse leaves the moment that pulse is seen. Start resets to
beat 0 (the first pulse after Start is beat 0), Continue resumes, Stop silences, Song
Position Pointer moves. When pulses stop for longer than ``timeout_beats``, everything
sounding is silenced until they come back.

Times are seconds on ``time.perf_counter``'s clock; beats are quarter notes from the start
of playback. /work/notes/clock_protocol.md says who calls what, from which thread.
"""

from __future__ import annotations

import logging
import math
import queue
from collections import deque
from dataclasses import dataclass
from typing import Protocol

import mido

__all__ = ["PPQN", "STOPPED", "Clock", "InternalClock", "MidiClockFollower", "Transport"]

logger = logging.getLogger(__name__)

PPQN = 24  # MIDI clock pulses per quarter note
FOLLOWED = frozenset({"clock", "start", "continue", "stop", "songpos"})  # what a follower takes from the input


@dataclass(frozen=True)
class Transport:
    """What a clock's transport did: it rolls from ``beat`` (Start: 0; Continue and Song
    Position: where they point), or it stopped (``running`` False; ``beat`` unused)."""

    running: bool
    beat: float = 0.0


STOPPED = Transport(False)


class Clock(Protocol):
    """What the Player asks of a clock. Every method runs on the clock thread (the Player's).

    ``kind`` and ``idle`` are what the status shows ("internal clock, stopped", "midi clock,
    waiting for clock"). ``sends_clock``: MIDI clock, Start and Stop may go out on this
    clock's timeline (a follower's only as a bridge: ``--send-clock`` with ``--clock midi``).
    ``leads``: events may be sent the output's ``lead`` seconds early (not when each hit waits
    for its pulse). ``shared``: others change its tempo and transport too (a Link session):
    the Player makes the controls follow what it does, so the next key steps from there.
    """

    kind: str
    sends_clock: bool
    leads: bool
    shared: bool

    @property
    def idle(self) -> str:
        """The status while not playing (read every turn: it may change)."""
        ...

    @property
    def bpm(self) -> float:
        """The tempo now: set, or estimated from what the clock follows."""
        ...

    def beat_at(self, t: float) -> float:
        """Where the playhead is at time ``t``."""
        ...

    def time_of(self, beat: float) -> float:
        """When ``beat`` sounds; ``math.inf`` while the clock cannot know yet (a follower knows
        only up to its next pulse: a hit there leaves when that pulse arrives)."""
        ...

    def horizon(self, t: float) -> float:
        """The last beat known at time ``t``: the Player asks the sequencer for events up to it
        plus its look-ahead (``t`` is the time it sends for: now + lead)."""
        ...

    def request(self, running: bool, bpm: float, now: float) -> None:
        """What the controls ask for, every turn: run or not, at this tempo. A clock that
        follows another device ignores it; a shared one passes it on; the change shows in
        ``poll`` when (and if) the transport moves."""
        ...

    def poll(self, now: float) -> Transport | None:
        """What the transport did since the last poll (the latest change), or None."""
        ...

    def status(self, t: float) -> object:
        """More for the status line than kind and tempo say, or "": anything whose ``str()``
        is the text ("Link: 2 peers, ..."); numbers are best, the UI formats them."""
        ...


class InternalClock:
    """Beat <-> time for a steady tempo, started and stopped by the controls. Pure: the
    caller passes the time."""

    kind = "internal"
    idle = "stopped"
    sends_clock = True
    leads = True
    shared = False

    def __init__(self, bpm: float = 120.0) -> None:
        self.bpm = float(bpm)
        self.t0 = 0.0  # time of beat 0
        self.running = False
        self._change: Transport | None = None

    def start(self, now: float, beat: float = 0.0) -> None:
        self.t0 = now - beat * 60.0 / self.bpm
        self.running = True

    def set_bpm(self, bpm: float, now: float) -> None:
        """Change tempo keeping the phase: the beat playing now stays where it is."""
        beat = self.beat_at(now)
        self.bpm = float(bpm)
        self.t0 = now - beat * 60.0 / self.bpm

    def beat_at(self, t: float) -> float:
        return (t - self.t0) * self.bpm / 60.0

    def time_of(self, beat: float) -> float:
        return self.t0 + beat * 60.0 / self.bpm

    def horizon(self, t: float) -> float:
        return self.beat_at(t)

    def request(self, running: bool, bpm: float, now: float) -> None:
        if bpm != self.bpm:
            self.set_bpm(bpm, now)
        if running and not self.running:
            self.start(now)
            self._change = Transport(True, 0.0)
        elif not running and self.running:
            self.running = False
            self._change = STOPPED

    def poll(self, now: float) -> Transport | None:
        change, self._change = self._change, None
        return change

    def status(self, t: float) -> str:
        return ""


class MidiClockFollower:
    """Position and tempo from incoming MIDI clock. The input callback hands it messages
    (``hear``); the clock thread takes them in order in ``poll``.

    Pulses are timed by when they arrived (a ``timed`` input: the JACK cycle that brought
    them, however late Python got round to them), so a bunch handed over at once still gives
    the tempo. Tempo = the time over the pulses of the last beat since the last re-anchor
    (Start, Continue, Song Position, a return after a loss, a stall); after a re-anchor the
    last estimate holds until an 8th of new pulses has come. Every pulse that arrives is one
    pulse: a gap longer than one and a half periods (the machine stalled: a JACK server
    that waits for its clients, or whose driver ran late, delivers every pulse late, none
    lost) is a stall, and the tempo re-anchors after it. A gap over the lost timeout is a
    lost clock (see ``poll``); a tempo change in MIDI clock is gradual, never a gap."""

    kind = "midi"
    idle = "waiting for clock"
    sends_clock = False  # True for the bridge: each pulse goes out as it arrives, Start/Stop/SPP with it
    leads = False  # a hit on a pulse leaves when the pulse arrives: leading the others would skew them
    shared = False  # the rig's clock decides: the controls' stop only mutes
    SETTLE = PPQN // 2  # pulses after a re-anchor before the tempo is estimated from them

    def __init__(self, timeout_beats: float = 3.0) -> None:
        self.running = False
        self.pulse = -1  # index of the last pulse seen; the first after Start is 0
        self.stamp = 0.0  # arrival time of that pulse
        self.period = 60.0 / (120.0 * PPQN)  # seconds per pulse, estimated (120 BPM until pulses come)
        self._settled = False  # the period is from an 8th of pulses or more
        self._window: deque[tuple[int, float]] = deque(maxlen=PPQN + 1)  # (pulse, arrival) of the last beat
        self.timeout_beats = timeout_beats
        self.located = False  # Start / Continue / Song Position moved the playhead
        self.transport_seen = False  # any Start, Continue, Stop or Song Position so far
        self._loose = 0  # pulses heard while stopped, before any transport message
        self._inbox: queue.SimpleQueue[tuple[mido.Message, float]] = queue.SimpleQueue()
        self._timed_out = False  # pulses stopped while running: silent until they return
        self._rolled = 0.0  # arrival time of the last Start or Continue

    @property
    def bpm(self) -> float:
        return 60.0 / (self.period * PPQN)

    def hear(self, msg: mido.Message, stamp: float) -> bool:
        """The input callback (rtmidi's thread): only queue, never work. True if the message
        is one to follow (the caller then wakes the clock thread)."""
        if msg.type in FOLLOWED:
            self._inbox.put((msg, stamp))
            return True
        return False

    def feed(self, msg: mido.Message, stamp: float) -> str | None:
        """Take one incoming message that arrived at ``stamp``; returns its type if it mattered."""
        kind = msg.type
        if kind == "clock":
            if self.running:
                self._count(stamp)
            elif not self.transport_seen:
                # Joining a clock that is already running (or one that never sends Start):
                # after a beat of pulses, play along, bar 1 from the next pulse. After a Stop
                # this never happens: many DAWs keep sending pulses while stopped.
                self._loose += 1
                if self._loose >= PPQN:
                    self.running, self.pulse, self.located = True, -1, True
                    self._window.clear()
                    logger.warning("MIDI clock without a Start: playing along, bar 1 from now")
            self.stamp = stamp
            return kind
        if kind in ("start", "continue", "stop", "songpos"):
            self.transport_seen = True
            self._window.clear()  # the pulses before are no measure of the ones after
        if kind in ("start", "continue"):
            self._rolled = stamp  # pulses are due from here: not lost before the first one is late
        if kind == "start":
            self.running, self.pulse, self.located = True, -1, True
            return kind
        if kind == "continue":
            self.running, self.located = True, True
            return kind
        if kind == "stop":
            self.running = False
            return kind
        if kind == "songpos":
            self.pulse = msg.pos * 6 - 1  # a MIDI beat is a 16th: 6 pulses; the next pulse is there
            self.located = True
            return kind
        return None

    def _count(self, stamp: float) -> None:
        """A pulse arrived while running: the next one, and the tempo from the arrivals."""
        if stamp - self.stamp > 1.5 * self.period:
            self._window.clear()  # a stall or a return: no measure of the tempo; from here on
        self.pulse += 1
        self._window.append((self.pulse, stamp))
        (p0, t0), (p1, t1) = self._window[0], self._window[-1]
        if p1 - p0 >= self.SETTLE:
            self.period, self._settled = (t1 - t0) / (p1 - p0), True
        elif p1 > p0 and not self._settled:  # nothing better yet
            self.period = (t1 - t0) / (p1 - p0)

    def poll(self, now: float) -> Transport | None:
        change = None
        while True:
            try:
                msg, stamp = self._inbox.get_nowait()
            except queue.Empty:
                break
            kind = self.feed(msg, stamp)
            if kind == "stop":
                change, self._timed_out = STOPPED, False
            elif self.located:  # Start, Continue, Song Position, or joining: from the next pulse
                self.located, self._timed_out = False, False
                change = Transport(True, (self.pulse + 1) / PPQN) if self.running else STOPPED
            elif kind == "clock" and self.running and self._timed_out:
                self._timed_out = False  # pulses are back: play on from this one
                change = Transport(True, self.pulse / PPQN)
        if self.running and not self._timed_out and self.timed_out(now):
            self._timed_out = True
            change = STOPPED
        # what the status says while not playing: pulses that stopped without a Stop are a
        # lost clock (a cable, a crashed DAW), not a transport the user stopped
        self.idle = "clock lost" if self._timed_out else MidiClockFollower.idle
        return change

    def request(self, running: bool, bpm: float, now: float) -> None:
        """The rig's clock decides: the controls' stop only mutes (the Player does that)."""

    def beat_at(self, t: float) -> float:
        """Estimated position: the last pulse, plus the time since, at most one pulse ahead."""
        ahead = min(1.0, max(0.0, (t - self.stamp) / self.period))
        return (self.pulse + ahead) / PPQN

    def time_of(self, beat: float) -> float:
        pulses = beat * PPQN - self.pulse  # after the last pulse seen
        if pulses >= 1 - 1e-9:
            return math.inf  # waits for its pulse, not for the estimate
        # a hit between pulses from the estimated tempo; one the last pulse overtook (the
        # input stamps pulses per JACK cycle) is due when that pulse arrived
        return self.stamp + max(0.0, pulses) * self.period

    def horizon(self, t: float) -> float:
        return (self.pulse + 1) / PPQN  # hits up to the next pulse

    def status(self, t: float) -> str:
        return ""

    def timed_out(self, now: float) -> bool:
        return now - max(self.stamp, self._rolled) > self.timeout_beats * PPQN * self.period
