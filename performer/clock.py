"""Clocks, and the clock thread that plays the sequencer on them.

Internal clock: tick k of 24 per quarter sounds at ``t0 + k * 60 / (24 * bpm)``, computed
from the start time and the tick count, never by adding up sleeps, so it cannot drift; a
tempo change moves ``t0`` so that the current beat keeps its place.

MIDI clock follower: every 0xF8 pulse is stamped with ``perf_counter`` on arrival (by the
input callback) and re-anchors the position: pulse n is beat n / 24. The tempo estimated
from recent pulse intervals only places what lies between pulses (microtiming): a hit on a
pulse leaves the moment that pulse is seen. Start resets to beat 0 (the first pulse after
Start is beat 0), Continue resumes, Stop silences, Song Position Pointer moves. When
pulses stop for longer than ``timeout_beats``, everything sounding is silenced until they
come back.

``Player`` is the clock thread. It owns the Sequencer, the pending notes and the outputs:
it is the only thread that sends. Each turn of its loop (``service``) reads the controls,
takes the newest pattern from the mailbox, asks the sequencer for the window just ahead,
sends what is due and returns when it next has something to do. Per-event work is a few
dictionary and heap operations: the GIL is shared with the decoder and the window.
"""

from __future__ import annotations

import heapq
import logging
import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable

import mido

from performer.control import Controls
from performer.sequencer import Mailbox, PlayerView, Sequencer

__all__ = ["PPQN", "InternalClock", "MidiClockFollower", "Player"]

logger = logging.getLogger(__name__)

PPQN = 24  # MIDI clock pulses per quarter note
CLOCK, START, CONTINUE, STOP = (mido.Message(t) for t in ("clock", "start", "continue", "stop"))


class InternalClock:
    """Beat <-> time for a steady tempo. Pure: the caller passes the time."""

    kind = "internal"

    def __init__(self, bpm: float = 120.0) -> None:
        self.bpm = float(bpm)
        self.t0 = 0.0  # time of beat 0
        self.running = False

    def start(self, now: float, beat: float = 0.0) -> None:
        self.t0 = now - beat * 60.0 / self.bpm
        self.running = True

    def stop(self) -> None:
        self.running = False

    def set_bpm(self, bpm: float, now: float) -> None:
        """Change tempo keeping the phase: the beat playing now stays where it is."""
        beat = self.beat_at(now)
        self.bpm = float(bpm)
        self.t0 = now - beat * 60.0 / self.bpm

    def beat_at(self, t: float) -> float:
        return (t - self.t0) * self.bpm / 60.0

    def time_of(self, beat: float) -> float:
        return self.t0 + beat * 60.0 / self.bpm


class MidiClockFollower:
    """Position and tempo from incoming MIDI clock. Fed by ``Player`` with stamped messages."""

    kind = "midi"

    def __init__(self, timeout_beats: float = 3.0) -> None:
        self.running = False
        self.pulse = -1  # index of the last pulse seen; the first after Start is 0
        self.stamp = 0.0  # arrival time of that pulse
        self.intervals: deque[float] = deque(maxlen=PPQN)  # the last beat's pulse intervals
        self.timeout_beats = timeout_beats
        self.located = False  # Start / Continue / Song Position moved the playhead: the player relocates
        self.transport_seen = False  # any Start, Continue, Stop or Song Position so far
        self._loose = 0  # pulses heard while stopped, before any transport message

    @property
    def period(self) -> float:
        """Seconds per pulse, averaged over the last beat (120 BPM until two pulses are seen)."""
        return sum(self.intervals) / len(self.intervals) if self.intervals else 60.0 / (120.0 * PPQN)

    @property
    def bpm(self) -> float:
        return 60.0 / (self.period * PPQN)

    def feed(self, msg: mido.Message, stamp: float) -> str | None:
        """Take one incoming message; returns its type if it mattered."""
        kind = msg.type
        if kind == "clock":
            if self.stamp and self.running and stamp - self.stamp < 4 * self.period + 0.05:
                self.intervals.append(stamp - self.stamp)  # gaps (a pause) are not intervals
            self.stamp = stamp
            if self.running:
                self.pulse += 1
            elif not self.transport_seen:
                # Joining a clock that is already running (or one that never sends Start):
                # after a beat of pulses, play along, bar 1 from the next pulse. After a Stop
                # this never happens: many DAWs keep sending pulses while stopped.
                self._loose += 1
                if self._loose >= PPQN:
                    self.running, self.pulse, self.located = True, -1, True
                    logger.warning("MIDI clock without a Start: playing along, bar 1 from now")
            return kind
        if kind in ("start", "continue", "stop", "songpos"):
            self.transport_seen = True
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

    def beat_at(self, t: float) -> float:
        """Estimated position: the last pulse, plus the time since, at most one pulse ahead."""
        ahead = min(1.0, max(0.0, (t - self.stamp) / self.period))
        return (self.pulse + ahead) / PPQN

    def time_of(self, beat: float) -> float:
        return self.stamp + (beat * PPQN - self.pulse) * self.period

    def timed_out(self, now: float) -> bool:
        return now - self.stamp > self.timeout_beats * PPQN * self.period


def _realtime_priority() -> None:
    """Ask the OS to run this thread (pid 0 = the calling thread on Linux) before ordinary
    work, so a busy machine delays ticks less. Silently stays ordinary where not allowed."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
        logger.debug("clock thread runs SCHED_FIFO 20")
    except (AttributeError, OSError):
        pass


class Player:
    """The clock thread: plays the sequencer on an internal clock or on incoming MIDI clock.

    ``outputs``: objects with ``send(msg)`` (and optionally ``panic()``): the MIDI out port,
    the audio preview. ``now`` is injectable so unit tests drive ``service`` by hand."""

    def __init__(
        self,
        sequencer: Sequencer,
        mailbox: Mailbox,
        controls: Controls,
        outputs: list,
        clock: InternalClock | MidiClockFollower,
        channel: int = 9,
        gate: float = 0.125,
        lookahead: float = 1.0 / 24,
        send_clock: bool = True,
        lead: float = 0.0,
        ports: str = "",
        now: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.seq, self.mailbox, self.controls, self.outputs, self.clock = sequencer, mailbox, controls, outputs, clock
        self.channel = channel
        self.gate = gate  # note length in beats
        self.lookahead = lookahead  # beats scheduled ahead: at least half a step, so early hits leave on time
        self.send_clock = send_clock and isinstance(clock, InternalClock)
        # Seconds to send before an event's time. rtmidi's JACK port stamps every message at
        # the start of the next JACK cycle, so an event sent on time lands 0..1 period late;
        # sent half a period early, it lands on the cycle boundary nearest its time. Not when
        # following: a hit on a pulse leaves when that pulse arrives, and leading only the hits
        # between pulses would skew them against it.
        self.lead = lead if isinstance(clock, InternalClock) else 0.0
        self.now = now
        self.inbox: queue.SimpleQueue = queue.SimpleQueue()  # (msg, stamp) from the MIDI input callback
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self._burst: list[mido.Message] = []  # sent at the end of this turn, see _flush
        self._heap: list[tuple[float, int, int, int, int]] = []  # (beat, kind, order, note, velocity/serial)
        self._wake = threading.Event()  # set by the input callback: a message is waiting
        self._order = 0
        self._sounding: dict[int, int] = {}  # note -> serial of the note-on that holds it
        self._scheduled = 0.0  # beats before this have been asked of the sequencer
        self._from = 0.0  # the beat playing started (or relocated) at
        self._next_tick = 0
        self._state = controls.get()
        self._silenced = False  # external clock timed out
        self.late = 0  # events sent over 1 ms after they were due to leave (their time - lead)
        self._started: float | None = None  # beat 0's time, logged once the turn is sent
        self.ports = ports
        self.view = PlayerView(bpm=clock.bpm, clock=clock.kind, state="stopped", ports=ports)
        self._playing = False

    # --- output -----------------------------------------------------------------------
    def _send(self, msg: mido.Message) -> None:
        self._burst.append(msg)

    def _flush(self) -> None:
        # Everything due leaves together, output by output (the MIDI port first): sent one
        # message at a time to every output, a pulse and its notes could straddle a JACK cycle.
        burst, self._burst = self._burst, []
        for out in self.outputs:
            for msg in burst:
                out.send(msg)

    def _note_off(self, note: int) -> None:
        self._sounding.pop(note, None)
        self._send(mido.Message("note_off", channel=self.channel, note=note, velocity=0))

    def silence(self) -> None:
        """Note-offs for everything sounding, then All Notes Off; forget pending note-ons."""
        for note in list(self._sounding):
            self._note_off(note)
        self._heap = []
        self._send(mido.Message("control_change", channel=self.channel, control=123, value=0))
        self._flush()

    # --- transport --------------------------------------------------------------------
    def _start(self, now: float) -> None:
        self.silence()
        self.clock.start(now + self.lead)  # so that beat 0 too can leave ``lead`` early
        self._started = self.clock.t0
        self.seq.locate(0.0)
        # from a beat back, for bar 1's early hits: they go at once, with Start
        self._scheduled, self._next_tick, self._playing, self._from = -1.0, 0, True, 0.0
        if self.send_clock:
            self._send(START)

    def _stop(self) -> None:
        self._playing = False
        self.clock.stop()
        if self.send_clock:
            self._send(STOP)
        self.silence()

    def _apply_controls(self, now: float) -> None:
        st = self.controls.get()
        old, self._state = self._state, st
        if st.swap != self.seq.swap:
            self.seq.swap = st.swap
        if st.panic != old.panic:
            self.silence()
            for out in self.outputs:
                getattr(out, "panic", lambda: None)()
        if not isinstance(self.clock, InternalClock):
            if not st.running and old.running:
                self.silence()  # following a clock, stop only mutes: the rig's clock keeps the place
            return
        if st.bpm != self.clock.bpm:
            self.clock.set_bpm(st.bpm, now)
        if st.running and not self._playing:
            self._start(now)
        elif not st.running and self._playing:
            self._stop()

    def _take_input(self, now: float) -> bool:
        """Feed queued clock messages to the follower; True if a pulse arrived."""
        pulsed = False
        f = self.clock
        while True:
            try:
                msg, stamp = self.inbox.get_nowait()
            except queue.Empty:
                return pulsed
            if not isinstance(f, MidiClockFollower):
                continue
            kind = f.feed(msg, stamp)
            if kind == "stop":
                self._playing = False
                self.silence()
            elif f.located:
                f.located = False
                self.silence()
                self._from = (f.pulse + 1) / PPQN
                self.seq.locate(self._from)
                self._scheduled = self._from - 1.0  # early hits of the first step too
                self._playing = f.running
            elif kind == "clock" and f.running:
                pulsed = True
                self._playing = True
                if self._silenced:
                    self._silenced = False
                    self._scheduled = max(self._scheduled, f.pulse / PPQN)
                    self.seq.locate(self._scheduled)

    # --- the loop ---------------------------------------------------------------------
    def service(self) -> float:
        """One turn: returns the time of the next thing to do."""
        nxt = self._turn(self.now())
        self._flush()
        if self._started is not None:  # after the flush: a write to stderr must not delay beat 0
            # what a benchmark compares the output with (perf_counter is CLOCK_MONOTONIC on Linux)
            logger.info("internal clock: beat 0 at perf_counter %.6f s, %g BPM", self._started, self.clock.bpm)
            self._started = None
        return nxt

    def _turn(self, now: float) -> float:
        self._apply_controls(now)
        pattern = self.mailbox.take()
        if pattern is not None:
            self.seq.offer(pattern)
        external = isinstance(self.clock, MidiClockFollower)
        if external:
            self._take_input(now)
            if self._playing and self.clock.timed_out(now) and not self._silenced:
                self._silenced = True
                self.silence()
        if not self._playing or (external and (self._silenced or not self._state.running)):
            self._publish(now)
            return now + 0.002
        clock = self.clock
        # ask for the window just ahead
        if external:
            horizon = (clock.pulse + 1) / PPQN + self.lookahead  # hits up to the next pulse and a bit
        else:
            horizon = clock.beat_at(now + self.lead) + self.lookahead  # notes leave as early as pulses
        if horizon > self._scheduled:
            for ev in self.seq.events(self._scheduled, horizon):
                self._push(ev.beat, 1, ev.note, ev.velocity)
            self._scheduled = horizon
        # send what is due
        while self._heap:
            beat, kind, _, note, value = self._heap[0]
            if external and beat * PPQN >= clock.pulse + 1 - 1e-9:
                break  # a hit on a pulse leaves when that pulse arrives, not at its estimate
            due = clock.time_of(beat) - self.lead
            if due > now:
                break
            heapq.heappop(self._heap)
            self._pulses(now, beat)  # after a stall too, each pulse still goes before its notes
            # Not late: an early hit before a start (it cannot be on time), and, following a
            # clock, a hit between pulses whose next pulse came before the estimate said (the
            # input stamps pulses per JACK cycle): it leaves with that pulse.
            overtaken = external and beat * PPQN < clock.pulse
            if now - due > 0.001 and beat >= self._from and not overtaken:
                self.late += 1
            if kind == 1:
                if note in self._sounding:
                    self._note_off(note)  # retrigger: end the old note first
                self._order += 1
                self._sounding[note] = self._order
                self._send(mido.Message("note_on", channel=self.channel, note=note, velocity=value))
                self._push(beat + self.gate, 0, note, self._order)
            elif self._sounding.get(note) == value:
                self._note_off(note)
        self._pulses(now, float("inf"))
        self._publish(now)
        nxt = now + 0.01
        # A hit waiting for its pulse wakes with the pulse (the input callback sets _wake),
        # not at the estimate: an estimate already past would make this loop spin.
        if self._heap and not (external and self._heap[0][0] * PPQN >= clock.pulse + 1 - 1e-9):
            nxt = min(nxt, clock.time_of(self._heap[0][0]) - self.lead)
        if self.send_clock:
            nxt = min(nxt, clock.time_of(self._next_tick / PPQN) - self.lead)
        if not external:
            nxt = min(nxt, clock.time_of(self._scheduled - self.lookahead / 2) - self.lead)
        return nxt

    def _pulses(self, now: float, until_beat: float) -> None:
        """Send the clock pulses due by ``now`` that fall on or before ``until_beat``."""
        if not self.send_clock:
            return
        while (
            self._next_tick <= until_beat * PPQN + 1e-9
            and self.clock.time_of(self._next_tick / PPQN) - self.lead <= now
        ):
            self._send(CLOCK)
            self._next_tick += 1

    def _push(self, beat: float, kind: int, note: int, value: int) -> None:
        # (beat, kind, order): at one beat note-offs (0) go before note-ons (1)
        self._order += 1
        heapq.heappush(self._heap, (beat, kind, self._order, note, value))

    def _publish(self, now: float) -> None:
        c = self.clock
        state = (
            "playing"
            if self._playing and not self._silenced
            else (
                "waiting for clock"
                if isinstance(c, MidiClockFollower) and (self._silenced or not c.running)
                else "stopped"
            )
        )
        beat = max(0.0, c.beat_at(now)) if self._playing else self.view.beat
        ports = self.ports + ("  (MIDI out LOST)" if any(getattr(o, "lost", False) for o in self.outputs) else "")
        self.view = PlayerView(beat, c.bpm, c.kind, state, ports, self.seq.pattern, self.late, 0)

    def run(self) -> None:
        _realtime_priority()
        try:
            while not self.stop_event.is_set():
                wait = self.service() - self.now()
                if wait > 0:
                    self._wake.wait(min(wait, 0.05))
                self._wake.clear()
        except Exception:
            logger.exception("the clock thread failed; silencing")
        finally:
            self.silence()
            if self.send_clock and self._playing:
                self._send(STOP)
            self._flush()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="rvae-clock", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def on_midi(self, msg: mido.Message, stamp: float) -> None:
        """The input port's callback (rtmidi's thread): only queue, never work. On the
        internal clock nothing here reads the queue (the input may carry a controller's
        clock all show long), so nothing is queued."""
        if isinstance(self.clock, MidiClockFollower) and msg.type in ("clock", "start", "continue", "stop", "songpos"):
            self.inbox.put((msg, stamp))
            self._wake.set()
