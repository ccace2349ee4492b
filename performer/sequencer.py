"""The sequencer: a pure core that says which notes fall in a window of beats, and the
``Player``, the clock thread that plays it on a clock.

Positions are in beats (quarter notes) from the start of playback; a Pattern's loop
repeats forever. The core (``Sequencer``) knows no threads, clocks or MIDI: the Player asks
it for the window just ahead and turns what it returns into deadlines.

A hit belongs to a grid step; its microtiming moves it up to half a step early or late.
So the events sounding in beats [b0, b1) come from grid steps up to half a step outside
that window, and an early hit of the next loop's first step sounds before the loop ends.

Swaps: a new pattern takes over at the next step, beat or bar boundary that no earlier
query has looked at, so every grid step is played from exactly one pattern.

``Player`` is the clock thread. It owns the Sequencer, the pending notes and the outputs:
it is the only thread that sends. Each turn of its loop (``service``) reads the controls,
asks its clock (any ``clock.Clock``) what the transport did, takes the newest pattern from
the mailbox, asks the sequencer for the window just ahead, sends what is due and returns
when it next has something to do. Per-event work is a few dictionary and heap operations:
the GIL is shared with the decoder and the window.
"""

from __future__ import annotations

import heapq
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import mido
import numpy as np

from performer.clock import PPQN, Clock, Transport
from rvae.grid import Grid
from rvae.groove import Groove

if TYPE_CHECKING:
    from performer.control import Controls, ControlState
    from performer.ports import Output

__all__ = [
    "SWAP_MODES",
    "Event",
    "Mailbox",
    "Pattern",
    "Player",
    "PlayerView",
    "Sequencer",
    "bar_beat",
    "make_pattern",
    "shift",
    "song_position",
]

logger = logging.getLogger(__name__)

SWAP_MODES = ("tick", "beat", "bar")
CLOCK, START, STOP, CONTINUE = (mido.Message(t) for t in ("clock", "start", "stop", "continue"))
ALL_NOTES_OFF = 123


@dataclass(frozen=True)
class Event:
    beat: float  # when it sounds, beats from the start of playback
    note: int
    velocity: int
    instrument: int


@dataclass(frozen=True, eq=False)
class Pattern:
    """An immutable loop of note events, ready to play: mutes, velocity mode and
    microtiming already applied. Arrays are (E,), sorted by step."""

    grid: Grid
    steps: np.ndarray  # int, grid step in the loop
    offsets: np.ndarray  # float, in steps (-0.5..0.5), positive = late
    notes: np.ndarray  # int, MIDI note
    velocities: np.ndarray  # int, 1..127
    instruments: np.ndarray  # int, kit class
    groove: Groove | None = None  # what was decoded (before mutes), for the display
    z: tuple[float, ...] = ()
    serial: int = 0  # increases with every new pattern, so observers can tell them apart
    swap: str | None = None  # takes over at this boundary rather than the sequencer's (a new model: "bar")

    @property
    def loop_beats(self) -> float:
        return self.grid.steps / self.grid.steps_per_quarter


def make_pattern(
    groove: Groove,
    mutes: frozenset[int] = frozenset(),
    velocity: int | None = None,
    microtiming: float = 1.0,
    z: tuple[float, ...] = (),
    serial: int = 0,
) -> Pattern:
    """A Groove -> a Pattern. ``velocity``: a fixed velocity, or None for the decoded ones;
    ``microtiming``: 0 = exactly on the grid, 1 = as decoded."""
    hits = [h for h in groove.hits() if h[1] not in mutes]  # (step, instrument, velocity, offset)
    steps = np.array([h[0] for h in hits], dtype=np.int64)
    inst = np.array([h[1] for h in hits], dtype=np.int64)
    vel = np.array([velocity or h[2] for h in hits], dtype=np.int64)
    off = shift(np.array([h[3] for h in hits], dtype=np.float64), microtiming)
    notes = np.array([groove.kit.out_notes[i] for i in inst], dtype=np.int64)
    for a in (steps, off, notes, vel, inst):
        a.setflags(write=False)
    return Pattern(groove.grid, steps, off, notes, vel, inst, groove, tuple(z), serial)


def shift(offset, microtiming: float):
    """A decoded offset (-1..1, half steps, positive = late) -> where the hit plays, in steps
    from its grid step, at ``microtiming`` (0 = on the grid, 1 = as decoded). Kept short of
    half a step late, so a hit never lands on the next step's position. Arrays or floats."""
    return np.clip(offset * 0.5 * microtiming, -0.5, 0.4999)


class Mailbox:
    """A one-slot mailbox: the writer replaces, the reader takes the newest. Never blocks
    for longer than a pointer swap, so the clock thread can take from it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._item = None

    def put(self, item) -> None:
        with self._lock:
            self._item = item

    def take(self):
        with self._lock:
            item, self._item = self._item, None
        return item


@dataclass
class _Segment:
    start: float  # grid position (beats) from which this pattern plays
    pattern: Pattern


@dataclass
class Sequencer:
    """Owned by the clock thread. ``offer`` a new pattern; ``events(b0, b1)`` for windows
    that move forward; ``locate`` after Start, Stop or Song Position."""

    pattern: Pattern | None = None
    swap: str = "bar"
    _segments: list[_Segment] = field(default_factory=list)
    _decided: float = 0.0  # grid positions before this have a pattern fixed
    _pending: Pattern | None = None
    _floor: float = -math.inf  # the last locate: grid positions before it never play

    def __post_init__(self) -> None:
        if self.swap not in SWAP_MODES:
            raise ValueError(f"swap mode {self.swap!r} is not one of {', '.join(SWAP_MODES)}")
        if self.pattern is not None:
            self._segments = [_Segment(-math.inf, self.pattern)]

    def offer(self, pattern: Pattern) -> None:
        """A new pattern; it takes over at the next free boundary of the swap mode."""
        if not self._segments:
            self._segments = [_Segment(self._floor, pattern)]
            self.pattern = pattern
        else:
            self._pending = pattern

    @property
    def since(self) -> float:
        """The grid position (beats) the newest pattern plays from; -inf: from the start."""
        return self._segments[-1].start if self._segments else self._floor

    def locate(self, beat: float) -> None:
        """Jump: nothing before ``beat`` has been looked at; a pending pattern starts now.
        Grid positions before ``beat`` never play; those at or after it do, early hits too:
        ask from before ``beat`` (``events(beat - 1, ...)``) to hear a first kick played early."""
        current = self._pending or (self._segments[-1].pattern if self._segments else self.pattern)
        self._pending = None
        self._floor = beat
        self._segments = [_Segment(beat, current)] if current is not None else []
        self.pattern = current
        self._decided = beat

    def _boundary(self, pattern: Pattern, after: float, swap: str | None = None) -> float:
        g = pattern.grid
        unit = {"tick": 1 / g.steps_per_quarter, "beat": 1.0, "bar": float(g.quarters_per_bar)}[swap or self.swap]
        return math.ceil(after / unit - 1e-9) * unit

    def events(self, b0: float, b1: float) -> list[Event]:
        """Events sounding in beats [b0, b1), in time order."""
        if not self._segments:
            return []
        spq = self._segments[-1].pattern.grid.steps_per_quarter
        reach = b1 + 0.5 / spq  # the last grid position whose early hits can sound before b1
        if self._pending is not None:
            last = self._segments[-1]
            # never before the last segment's start: one bound to a bar line may lie ahead
            start = max(last.start, self._boundary(last.pattern, self._decided, self._pending.swap))
            self._segments.append(_Segment(start, self._pending))
            self.pattern, self._pending = self._pending, None
        self._decided = max(self._decided, reach)
        out: list[Event] = []
        for k, seg in enumerate(self._segments):
            end = self._segments[k + 1].start if k + 1 < len(self._segments) else math.inf
            out += _pattern_events(seg.pattern, b0, b1, max(seg.start, b0 - 1.0), min(end, reach))
        # segments wholly behind the window are finished
        while len(self._segments) > 1 and self._segments[1].start <= b0 - 1.0:
            self._segments.pop(0)
        out.sort(key=lambda e: (e.beat, e.note))
        return out


def _pattern_events(p: Pattern, b0: float, b1: float, g0: float, g1: float) -> list[Event]:
    """Events of pattern p sounding in [b0, b1) whose grid position is in [g0, g1)."""
    if len(p.steps) == 0 or g1 <= g0:
        return []
    spq = p.grid.steps_per_quarter
    loop = p.loop_beats
    out = []
    for n in range(math.floor((g0 - 1) / loop), math.floor(g1 / loop) + 1):
        grid_pos = n * loop + p.steps / spq  # (E,)
        when = grid_pos + p.offsets / spq
        sel = np.nonzero((grid_pos >= g0) & (grid_pos < g1) & (when >= b0) & (when < b1))[0]
        out += [Event(float(when[i]), int(p.notes[i]), int(p.velocities[i]), int(p.instruments[i])) for i in sel]
    return out


@dataclass(frozen=True)
class PlayerView:
    """What the clock thread shows the world, replaced whole on every tick: the window and
    the headless printer read it without locks."""

    beat: float = 0.0  # playhead, beats from the start of playback
    bpm: float = 120.0  # internal tempo, or the estimate from incoming clock
    clock: str = "internal"  # "internal" or "midi"
    state: str = "stopped"  # "playing", or the clock's idle: "stopped", "waiting for clock", "clock lost"
    ports: str = ""  # e.g. "out: rvae (JACK)  in: —"
    pattern: Pattern | None = None  # the pattern playing now
    late_events: int = 0  # events sent over 1 ms after they were due to leave
    missed_ticks: int = 0  # clock pulses sent over one pulse period after they were due
    detail: object = ""  # what else the clock says, str() shows it: "Link: 2 peers, 133.0 BPM, beat 3 of 4"
    pattern_from: float = 0.0  # the beat ``pattern`` plays from (ahead of ``beat`` until a swap happens)


def song_position(tick: int, bar_ticks: int) -> mido.Message:
    """Song Position Pointer for clock pulse ``tick`` (a bar line): MIDI beats (16ths, 6 pulses)
    from the start, wrapped at a bar line below SPP's largest value (16383) on a long set."""
    pos, bar = tick // 6, max(1, bar_ticks // 6)
    return mido.Message("songpos", pos=pos % (16384 // bar * bar))


def bar_beat(beat: float, grid: Grid) -> tuple[int, int]:
    """Playhead in beats -> (bar, unit in the bar), both 1-based; the unit is the time
    signature's (quarters in 4/4, eighths in 6/8 and 7/8)."""
    qpb = float(grid.quarters_per_bar)
    unit = 4 / grid.time_signature[1]
    bar = math.floor(beat / qpb + 1e-9)
    in_bar = max(0.0, beat - bar * qpb)
    return bar + 1, min(grid.time_signature[0], math.floor(in_bar / unit + 1e-9) + 1)


# --- the clock thread ------------------------------------------------------------------------


@dataclass(frozen=True, order=True, slots=True)
class Scheduled:
    """A note-on or note-off waiting in the Player's heap. In beat order; at one beat a
    note-off goes before a note-on (a retriggered note ends before it sounds again), then
    first pushed, first sent."""

    beat: float
    on: bool
    order: int
    note: int = field(compare=False)
    velocity: int = field(compare=False, default=0)  # a note-on's
    ends: int = field(compare=False, default=0)  # a note-off's: the ``order`` of the note-on it ends


def _realtime_priority() -> None:
    """Ask the OS to run this thread (pid 0 = the calling thread on Linux) before ordinary
    work, so a busy machine delays ticks less. Silently stays ordinary where not allowed."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
        logger.debug("clock thread runs SCHED_FIFO 20")
    except (AttributeError, OSError):
        pass


class Player:
    """The clock thread: plays the sequencer on ``clock`` (any ``clock.Clock``) to ``outputs``
    (any ``ports.Output``: the MIDI port, the audio preview, a recording). ``now`` is
    injectable so unit tests drive ``service`` by hand."""

    def __init__(
        self,
        sequencer: Sequencer,
        mailbox: Mailbox,
        controls: Controls,
        outputs: Sequence[Output],
        clock: Clock,
        channel: int = 9,
        gate: float = 0.125,
        lookahead: float = 1.0 / 24,
        send_clock: bool = True,
        ports: str = "",
        now: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.seq, self.mailbox, self.controls, self.clock = sequencer, mailbox, controls, clock
        self.outputs = list(outputs)
        self.channel = channel
        self.gate = gate  # note length in beats
        self.lookahead = lookahead  # beats scheduled ahead: at least half a step, so early hits leave on time
        self.send_clock = send_clock and clock.sends_clock
        # Seconds to send before an event's time: the outputs' largest lead. rtmidi's JACK port
        # stamps every message at the start of the next JACK cycle, so an event sent on time
        # lands 0..1 period late; sent half a period early, it lands on the cycle boundary
        # nearest its time. Not when the clock says no (a followed clock: see clock.py).
        self.lead = max((o.lead for o in self.outputs), default=0.0) if clock.leads else 0.0
        self.now = now
        self.ports = ports
        self.stop_event = threading.Event()
        self.late = 0  # events sent over 1 ms after they were due to leave (their time - lead)
        self.missed = 0  # clock pulses sent over one pulse period after they were due
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()  # set by the input callback: a pulse is waiting
        self._burst: list[mido.Message] = []  # sent at the end of this turn, see _flush
        self._heap: list[Scheduled] = []
        self._order = 0
        self._sounding: dict[int, int] = {}  # note -> order of the note-on that holds it
        self._scheduled = 0.0  # beats before this have been asked of the sequencer
        self._from = 0.0  # the beat playing started (or relocated) at
        self._next_tick = 0
        self._state = controls.get()
        self._playing = False
        self._started: tuple[float, float] | None = None  # (beat, time) it started at, logged once the turn is sent
        self._resync = threading.Event()  # a destination joined: SPP + Continue at the next bar
        self._resync_tick: int | None = None
        self.view = PlayerView(bpm=clock.bpm, clock=clock.kind, state=clock.idle, ports=ports)

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
        self._send(mido.Message("control_change", channel=self.channel, control=ALL_NOTES_OFF, value=0))
        self._flush()

    # --- what the controls and the clock say ----------------------------------------------
    def _follow(self, now: float) -> None:
        st = self.controls.get()
        old, self._state = self._state, st
        if st.swap != self.seq.swap:
            self.seq.swap = st.swap
        if st.panic != old.panic:
            self.silence()
            for out in self.outputs:
                out.panic()
        self.clock.request(st.running, st.bpm, now + self.lead)  # beat 0 too can leave ``lead`` early
        change = self.clock.poll(now)
        if change is not None:
            self._transport(change)
        if self.clock.shared:
            st = self._share(st, change)
        if old.running and not st.running and self._playing:
            self.silence()  # a clock that plays on (a followed one) keeps the place: stop only mutes
        pattern = self.mailbox.take()
        if pattern is not None:
            self.seq.offer(pattern)

    def _share(self, st: ControlState, change: Transport | None) -> ControlState:
        """A shared clock (Link) moved by others: the controls follow its tempo and a peer's
        start or stop, so that the next tempo key steps from the session's tempo and the
        space bar stops or starts from what plays. The clock ignores wishes that only echo it."""
        follow: dict[str, object] = {}
        if change is not None and change.running != st.running:
            follow["running"] = change.running
        if self.clock.bpm != st.bpm:
            follow["bpm"] = self.clock.bpm
        if follow:
            st = self._state = self.controls.update(**follow)
        return st

    def _transport(self, change: Transport) -> None:
        if not change.running:
            if self._playing and self.send_clock:
                self._send(STOP)
            self._playing = False
            self.silence()
            return
        self.silence()
        self._resync_tick = None  # Start and Continue tell the gear where we are anyway
        self.seq.locate(change.beat)
        # from a beat back, for the first step's early hits: they go at once, with Start
        self._from, self._scheduled, self._playing = change.beat, change.beat - 1.0, True
        self._next_tick = math.ceil(change.beat * PPQN - 1e-9)
        if self.send_clock and change.beat > 0:
            # mid-song (a Continue or Song Position followed, pulses back after a timeout):
            # Song Position counts 16ths (6 pulses), so the pulses resume at the next 16th,
            # where the position points, then Continue: gear that counts pulses locks in
            sixteenth = math.ceil(change.beat * 4 - 1e-9)
            self._next_tick = sixteenth * PPQN // 4
            self._send(song_position(self._next_tick, self._bar_ticks()))
            self._send(CONTINUE)
        elif self.send_clock:
            self._send(START)
        if math.isfinite(t := self.clock.time_of(change.beat)):
            self._started = change.beat, t

    # --- the loop ---------------------------------------------------------------------
    def service(self) -> float:
        """One turn: returns the time of the next thing to do."""
        nxt = self._turn(self.now())
        self._flush()
        if self._started is not None:  # after the flush: a write to stderr must not delay the first beat
            # what a benchmark compares the output with (perf_counter is CLOCK_MONOTONIC on Linux)
            beat, t = self._started
            logger.info("%s clock: beat %g at perf_counter %.6f s, %g BPM", self.clock.kind, beat, t, self.clock.bpm)
            self._started = None
        return nxt

    def _turn(self, now: float) -> float:
        self._follow(now)
        if not self._playing or not self._state.running:  # stopped, or muted on a clock that plays on
            self._publish(now)
            return now + 0.002
        if self._resync.is_set():
            self._resync.clear()
            bar = self._bar_ticks()
            self._resync_tick = -(-self._next_tick // bar) * bar if self.send_clock else None
        self._schedule(now)
        for entry, due in self._due(now):
            self._play(entry, due, now)
        self._pulses(now, math.inf)
        self._publish(now)
        return self._next_wake(now)

    def resync(self) -> None:
        """A destination joined while we play (any thread may call it): when we send clock, Song
        Position Pointer + Continue go out just before the next bar's first pulse, so gear
        started late locks in on that bar."""
        self._resync.set()

    def _bar_ticks(self) -> int:
        grid = self.seq.pattern.grid if self.seq.pattern is not None else None
        return round(grid.quarters_per_bar * PPQN) if grid is not None else 4 * PPQN

    def _schedule(self, now: float) -> None:
        """Ask the sequencer for the window just ahead of what the clock knows."""
        horizon = self.clock.horizon(now + self.lead) + self.lookahead  # notes leave as early as pulses
        if horizon > self._scheduled:
            for ev in self.seq.events(self._scheduled, horizon):
                self._push(ev.beat, True, ev.note, velocity=ev.velocity)
            self._scheduled = horizon

    def _due(self, now: float) -> Iterator[tuple[Scheduled, float]]:
        """What is due: (entry, the time it was due to leave), in order, taken off the heap.
        A note-off pushed while these are sent comes out too if it is due."""
        while self._heap:
            due = self.clock.time_of(self._heap[0].beat) - self.lead  # inf: waits for its pulse
            if due > now:
                return
            yield heapq.heappop(self._heap), due

    def _play(self, entry: Scheduled, due: float, now: float) -> None:
        """Send it: first the clock pulses up to its beat (after a stall too, each pulse still
        goes before its notes), then the note."""
        self._pulses(now, entry.beat)
        if now - due > 0.001 and entry.beat >= self._from:  # an early hit before a start cannot be on time
            self.late += 1
        note = entry.note
        if entry.on:
            if note in self._sounding:
                self._note_off(note)  # retrigger: end the old note first
            self._sounding[note] = entry.order
            self._send(mido.Message("note_on", channel=self.channel, note=note, velocity=entry.velocity))
            self._push(entry.beat + self.gate, False, note, ends=entry.order)
        elif self._sounding.get(note) == entry.ends:
            self._note_off(note)

    def _next_wake(self, now: float) -> float:
        nxt = now + 0.01
        if self._heap:  # a hit waiting for its pulse (inf) wakes with the pulse: the input sets _wake
            nxt = min(nxt, self.clock.time_of(self._heap[0].beat) - self.lead)
        if self.send_clock:
            nxt = min(nxt, self.clock.time_of(self._next_tick / PPQN) - self.lead)
        # ask the sequencer again before half the look-ahead is used up
        return min(nxt, self.clock.time_of(self._scheduled - self.lookahead / 2) - self.lead)

    def _pulses(self, now: float, until_beat: float) -> None:
        """Send the clock pulses due by ``now`` that fall on or before ``until_beat``."""
        if not self.send_clock:
            return
        while self._next_tick <= until_beat * PPQN + 1e-9:
            due = self.clock.time_of(self._next_tick / PPQN) - self.lead
            if due > now:
                return
            if now - due > 60.0 / (self.clock.bpm * PPQN):
                self.missed += 1
            if self._next_tick == self._resync_tick:
                self._send(song_position(self._next_tick, self._bar_ticks()))
                self._send(CONTINUE)
                self._resync_tick = None
            self._send(CLOCK)
            self._next_tick += 1

    def _push(self, beat: float, on: bool, note: int, velocity: int = 0, ends: int = 0) -> None:
        self._order += 1
        heapq.heappush(self._heap, Scheduled(beat, on, self._order, note, velocity, ends))

    def _publish(self, now: float) -> None:
        c = self.clock
        beat = max(0.0, c.beat_at(now)) if self._playing else self.view.beat
        ports = self.ports + ("  (MIDI out LOST)" if any(o.lost for o in self.outputs) else "")
        state = "playing" if self._playing else c.idle
        self.view = PlayerView(
            beat, c.bpm, c.kind, state, ports, self.seq.pattern, self.late, self.missed, c.status(now), self.seq.since
        )

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

    def wake(self) -> None:
        """Turn now, not at the next planned time: the input callback calls it when a followed
        clock's message arrives (a hit on a pulse leaves when the pulse does)."""
        self._wake.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="rvae-clock", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)
