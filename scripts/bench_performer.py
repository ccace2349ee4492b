"""Performer timing on real JACK MIDI ports (dummy driver, -p 128 at 48 kHz: one period is
2.67 ms). Prints JSON.

- decode: latency of turning a cursor position into a ready Pattern (decode + make_pattern);
- frame: the pygame window (dummy video driver) drawing while the cursor moves;
- internal: ``rvae perform --headless`` on its own clock at 90, 120, 174 BPM; note-on error
  against the ideal tick time. The performer logs (-v) when its beat 0 is, on perf_counter's
  clock; performer.testing's TimedCapture stamps each event with the start of the JACK cycle
  that carried it on the same clock. Also each note against the pulse sent with it, and the
  pulse-to-pulse jitter, in JACK frames;
- external: following jack_midi_clock at 90, 120, 174 BPM; note-on error against the pulse
  it belongs to (jack_midi_dump's sample-accurate frames; with --microtiming 0 every hit is
  on a pulse, and leaves when that pulse has arrived: the next cycle);
- soak: 174 BPM for minutes, the cursor moving 30 times a second over OSC; missed ticks,
  stuck notes, the same errors; soak_window: the same with the window drawing (offscreen);
- link: ``--clock link`` in a session a real Link peer (performer/link_peer.py) holds at 90,
  120, 174 BPM, the peer's start starting it, the peer moving the tempo 10 % up halfway:
  each note-on and each MIDI clock pulse (the Link -> MIDI clock bridge) against the time
  the peer's own timeline gives its beat, on the capture's clock;
- link_soak: the same at 174 BPM for minutes, the cursor moving 30 times a second over OSC
  and the window drawing (offscreen).

Usage: python scripts/bench_performer.py [--seconds 8] [--soak 180] [--window-soak 60] [--link-only]
  [--link-soak 600 [--restart-at 300]]

- link_soak_restart (``--restart-at``): the link soak with the JACK server killed (SIGKILL)
  and started again at that second, the peer's tempo change halfway to it. The capture
  (performer/rig_capture.py) and jack_midi_dump come back with the server, the performer
  must reconnect them. Figures outside the restart (``before_restart``; ``after_restart``
  from SETTLE s after the server's return), the first SETTLE s (``restart_window``), the
  capture's sessions and the gap in its data, where the recovery's time goes (server back ->
  the performer's rig client -> the capture reconnected -> first pulse, first note-on),
  notes cut by the restart (their note-offs died with the server), stuck notes after it.
  The issue's soak: --link-only --seconds 0 --link-soak 600 --restart-at 300 (about 11 min).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

RATE, PERIOD_FRAMES = 48000, 128

CKPT = ROOT / "checkpoints" / "groove-4-4.pt"
# seconds after a restarted server answers that count as the restart (the recovery
# target): the new server's cycle times settling and the graph reordering as clients come back
SETTLE = 2.0


def stats(values_ms) -> dict:
    a = np.asarray(values_ms, dtype=float)
    if not len(a):
        return {"n": 0}
    return {
        "n": len(a),
        "p50_ms": round(float(np.percentile(a, 50)), 3),
        "p99_ms": round(float(np.percentile(a, 99)), 3),
        "max_ms": round(float(a.max()), 3),
    }


def is_note_on(b: list[int]) -> bool:
    return len(b) == 3 and b[0] & 0xF0 == 0x90 and b[2] > 0


def after_pulse_ms(events: list[tuple[int, list[int]]]) -> list[float]:
    """Each note-on's distance (ms, from JACK frames) after the clock pulse last heard before it."""
    out, last = [], None
    for f, b in events:
        if b == [0xF8]:
            last = f
        elif is_note_on(b) and last is not None:
            out.append((f - last) / RATE * 1000)
    return out


def after_last_start(events):
    """Events (..., bytes) from the last Start on."""
    starts = [i for i, ev in enumerate(events) if ev[-1] and ev[-1][0] == 0xFA]
    return events[starts[-1] :] if starts else events


def pairing(events) -> int:
    """Note-ons never followed by their note-off."""
    sounding: dict[int, int] = {}
    for *_, b in events:
        if is_note_on(b):
            sounding[b[1]] = sounding.get(b[1], 0) + 1
        elif len(b) == 3 and (b[0] & 0xF0 == 0x80 or (b[0] & 0xF0 == 0x90 and b[2] == 0)) and sounding.get(b[1]):
            sounding[b[1]] -= 1
    return sum(sounding.values())


def _origin(output: str) -> float:
    """The performer's last "beat 0 at perf_counter T" (it logs one each start, with -v)."""
    hits = re.findall(r"beat 0 at perf_counter ([0-9.]+) s", output)
    if not hits:
        raise RuntimeError(f"the performer did not say when its clock started:\n{output[-2000:]}")
    return float(hits[-1])


def internal(bpm: float, seconds: float, move: bool = False, window: bool = False) -> dict:
    from performer.testing import MidiDump, Performer, TimedCapture, connect

    name = f"int-{int(bpm)}{'-win' if window else ''}"
    with TimedCapture(f"cap-{name}") as cap, MidiDump(f"dump-{name}", absolute=True) as dump:
        perf = Performer(f"perf-{name}", CKPT, "--bpm", f"{bpm:g}", window=window)
        try:
            connect(perf.port, cap.port)
            connect(perf.port, dump.port)
            time.sleep(0.3)
            perf.send("/rvae/stop")
            time.sleep(0.2)
            perf.send("/rvae/start")
            end = time.monotonic() + seconds
            k = 0
            while time.monotonic() < end:
                if move:  # circle the space, 30 moves a second
                    a = k / 30.0
                    perf.send("/rvae/xy", 2.0 * math.cos(a), 2.0 * math.sin(1.3 * a))
                    k += 1
                time.sleep(1 / 30)
        finally:
            output = perf.close()
        time.sleep(0.3)
        captured = cap.close()
        heard = after_last_start(dump.events())
    origin = _origin(output)
    tick = 60.0 / (bpm * 24)
    # Completeness, from jack_midi_dump (C, misses nothing) in JACK frames: pulses lost or
    # late, each note against the pulse sent with it (what a synced device hears), jitter.
    frames = np.array([f for f, b in heard if b == [0xF8]], dtype=float)
    # Timing, against the ideal tick itself: pulse n and its notes are meant for origin +
    # n*tick; the capture stamps each with the start of the JACK cycle that carried it, on
    # the same clock. Pulses are numbered by count since Start and a note takes the number
    # of the pulse before it, so a late event shows however late it is. Only if the capture
    # missed a cycle (and so maybe a pulse) are events numbered by their nearest tick,
    # which would fold an error beyond half a tick back: the report says which was used.
    captured_events = after_last_start(captured["events"])
    by_count = sum(b == [0xF8] for *_, b in captured_events) == len(frames) and not captured["missed_cycles"]
    pulse_err: list[float] = []
    note_err: list[float] = []
    n = -1
    for wall, _, b in captured_events:
        since = wall - origin
        if b == [0xF8]:
            n += 1
        if b == [0xF8] or is_note_on(b):
            k = n if by_count else round(since / tick)
            (pulse_err if b == [0xF8] else note_err).append((since - k * tick) * 1000)
    own = after_pulse_ms(heard)
    gaps = np.rint(np.diff(frames) / (RATE * tick))
    return {
        "bpm": bpm,
        "seconds": seconds,
        "window": window,
        "pulses": len(frames),
        "missed_ticks": int(np.sum(np.maximum(gaps - 1, 0))),  # as link's: gaps of two ticks or more
        "pulse_error": stats(np.abs(pulse_err)),
        "note_on_error": stats(np.abs(note_err)),
        "note_on_error_signed_mean_ms": round(float(np.mean(note_err)), 3) if note_err else None,
        "error_range_ms": [round(float(min(pulse_err + note_err)), 3), round(float(max(pulse_err + note_err)), 3)]
        if pulse_err
        else None,
        "ticks_numbered": "by count" if by_count else "by nearest tick (the capture missed a cycle)",
        "note_on_vs_own_pulse": stats(own),
        "pulse_interval_jitter": stats(np.abs(np.diff(frames) - RATE * tick) / RATE * 1000),
        "capture_missed_cycles": captured["missed_cycles"],  # their events are not in the errors
        "performer_late_events": None if window else _late(output),  # the console prints it
        "stuck_notes": pairing(heard),
    }


def _late(output: str) -> int | None:
    """The performer's own count of events sent over 1 ms after their time (console status)."""
    hits = re.findall(r"late (\d+)", output)
    return int(hits[-1]) if hits else None


def external(bpm: float, seconds: float) -> dict:
    from performer.testing import MidiClock, MidiDump, Performer, Transport, connect, wait_for_port

    with Transport() as transport, MidiClock(bpm=bpm) as clock, MidiDump(f"dump-ext-{int(bpm)}", absolute=True) as dump:
        perf = Performer(f"perf-ext-{int(bpm)}", CKPT, "--clock", "midi", "--midi-in", f"perf-ext-{int(bpm)}-in")
        try:
            inp = wait_for_port(f"perf-ext-{int(bpm)}-in:perf-ext-{int(bpm)}-in", "input", timeout=10)
            connect(clock.port, inp)
            connect(clock.port, dump.port)
            connect(perf.port, dump.port)
            time.sleep(0.3)
            transport.play()
            time.sleep(seconds)
            transport.stop()
            time.sleep(0.3)
        finally:
            perf.close()
        time.sleep(0.3)
        events = after_last_start(dump.events())
    errors = after_pulse_ms(events)
    return {
        "bpm": bpm,
        "seconds": seconds,
        "pulses": sum(1 for _, b in events if b == [0xF8]),
        "note_on_error_vs_pulse": stats(errors),
        "stuck_notes": pairing(events),
    }


@dataclass
class PeerTimeline:
    """The peer's bar lines around its tempo change: beat times before it at ``bpm`` from
    ``bar0`` (rvae's beat 0), after it at ``faster`` from ``bar_after``."""

    bpm: float
    faster: float
    bar0: float
    changed: float
    bar_after: float

    @property
    def after_beat(self) -> int:
        """rvae's beat of ``bar_after``: the first bar line after the change."""
        return (math.floor((self.changed - self.bar0) / (4 * 60.0 / self.bpm)) + 1) * 4

    def ideal(self, b: float) -> float:
        """When rvae's beat ``b`` falls on the peer's timeline."""
        old = self.bar0 + b * 60.0 / self.bpm
        return old if old < self.changed else self.bar_after + (b - self.after_beat) * 60.0 / self.faster

    def nearest(self, t: float) -> int:
        """The pulse nearest ``t``, when the capture missed some."""
        if t < self.changed:
            return round((t - self.bar0) / (60.0 / self.bpm) * 24)
        return self.after_beat * 24 + round((t - self.bar_after) / (60.0 / self.faster) * 24)


def _start_and_change_tempo(perf, peer, ports: list[str], half: float, move: bool, bpm: float, faster: float):
    """Connect rvae to ``ports``, start the peer once rvae waits for it, play ``half`` seconds,
    move the peer's tempo to ``faster``, play ``half`` more; the peer's timeline."""
    from performer.testing import connect

    for port in ports:
        connect(perf.port, port)
    deadline = time.monotonic() + 10
    while "waiting for a peer's start" not in perf.output() and time.monotonic() < deadline:
        time.sleep(0.05)
    asked = time.perf_counter()
    peer.ask("play")
    bar0 = peer.ask("bars", asked, 1)["times"][0]
    _play_for(perf, half, move)
    t = time.perf_counter()
    peer.ask("tempo", faster)
    changed = (t + time.perf_counter()) / 2
    bar_after = peer.ask("bars", changed, 1)["times"][0]
    _play_for(perf, half, move)
    return PeerTimeline(bpm, faster, bar0, changed, bar_after)


def _play_for(perf, seconds: float, move: bool) -> None:
    """Wait ``seconds``; with ``move``, circle the cursor over OSC 30 times a second meanwhile."""
    end, k = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        if move:
            a = k / 30.0
            perf.send("/rvae/xy", 2.0 * math.cos(a), 2.0 * math.sin(1.3 * a))
            k += 1
        time.sleep(1 / 30)


def link(bpm: float, seconds: float, move: bool = False, window: bool = False) -> dict:
    """rvae on Link: the peer's start starts it at the peer's next bar line (beat 0), and
    halfway the peer moves the tempo 10 % up. Pulse k (counted from Start) belongs to rvae's
    beat k/24, and a note to the pulse sent before it; the ideal time of beat b is the peer's
    bar line plus b beats at the tempo then (a tempo change keeps the bar lines' phase: the
    first bar line after it is beat (m + 1) * 4)."""
    from performer.link_peer import LinkPeer
    from performer.testing import MidiDump, Performer, TimedCapture

    name = f"link-{int(bpm)}{'-soak' if move else ''}"
    faster = round(bpm * 1.1, 2)
    with (
        LinkPeer(bpm=bpm, quantum=4) as peer,
        TimedCapture(f"cap-{name}") as cap,
        MidiDump(f"dump-{name}", absolute=True) as dump,
    ):
        perf = Performer(f"perf-{name}", CKPT, "--clock", "link", window=window)
        try:
            line = _start_and_change_tempo(perf, peer, [cap.port, dump.port], seconds / 2, move, bpm, faster)
            peer.ask("stop")
            time.sleep(0.5)
        finally:
            output = perf.close()
        time.sleep(0.3)
        captured = cap.close()
        heard = after_last_start(dump.events())
    ideal, nearest, bar0 = line.ideal, line.nearest, line.bar0

    events = after_last_start(captured["events"])
    by_count = not captured["missed_cycles"]
    pulse_err: list[float] = []
    note_err: list[float] = []
    n = -1
    for wall, _, b in events:
        if b == [0xF8]:
            n += 1
        if b == [0xF8] or is_note_on(b):
            k = n if by_count else nearest(wall)
            (pulse_err if b == [0xF8] else note_err).append((wall - ideal(k / 24)) * 1000)
    frames = np.array([f for f, b in heard if b == [0xF8]], dtype=float)
    ticks = np.array([ideal(k / 24) for k in range(len(frames))])
    gaps = np.rint(np.diff(frames) / RATE / np.diff(ticks)) if len(frames) > 1 else np.zeros(0)
    return {
        "bpm": bpm,
        "tempo_change_to": faster,
        "cursor_moving_and_window": [move, window],
        "seconds": seconds,
        "pulses": len(frames),
        # a gap of two ticks or more (a late pulse followed by a bunched one shows in the error)
        "missed_ticks": int(np.sum(np.maximum(gaps - 1, 0))),
        "note_on_error": stats(np.abs(note_err)),
        "note_on_error_signed_mean_ms": round(float(np.mean(note_err)), 3) if note_err else None,
        "bridge_pulse_error": stats(np.abs(pulse_err)),
        "ticks_numbered": "by count" if by_count else "by nearest tick (the capture missed a cycle)",
        "start_vs_peer_bar_ms": round((_origin(output) - bar0) * 1000, 3),
        "capture_missed_cycles": captured["missed_cycles"],
        "performer_late_events": None if window else _late(output),
        "stuck_notes": pairing(heard),
    }


def link_restart(bpm: float, seconds: float, restart_at: float, server: str) -> dict:
    """The Link soak with the JACK server killed (SIGKILL) and started again ``restart_at``
    seconds in, the cursor moving 30 times a second over OSC and the window drawing
    throughout (the restart runs on a thread of its own: the cursor does not pause). The
    peer moves the tempo 10 % up halfway to the restart, away from it. The capture
    (performer/rig_capture.py) opens again when the server is back, the performer has to
    reconnect it; its sessions say what it heard when, so the gap is reported, not hidden.

    Figures before the kill and after the server's return, separately; recovery: the server
    back (the earlier of: our restart saw it answer, the capture's client opened on it) to
    the first note-on captured, and to the first within 2 periods of its ideal time."""
    from performer.link_peer import LinkPeer
    from performer.rig_capture import RestartCapture
    from performer.testing import MidiDump, Performer, _stop, restart_jack

    name = "link-restart"
    faster = round(bpm * 1.1, 2)
    when: dict[str, float] = {}
    # jack_midi_dump (C, misses no cycle) for pulses and note pairs: one before, one after (it
    # ends with its server; the performer reconnects the new one, a remembered peer, by name)
    dumps = [MidiDump(f"dump-{name}", absolute=True)]

    def restart() -> None:
        when["killed"] = time.perf_counter()
        when["answered"] = restart_jack(server)
        dumps.append(MidiDump(f"dump-{name}", absolute=True))

    with LinkPeer(bpm=bpm, quantum=4) as peer, RestartCapture(f"cap-{name}") as cap:
        perf = Performer(f"perf-{name}", CKPT, "--clock", "link", window=True)
        try:
            line = _start_and_change_tempo(perf, peer, [cap.port, dumps[0].port], restart_at / 2, True, bpm, faster)
            restarting = threading.Thread(target=restart)
            restarting.start()
            _play_for(perf, seconds - restart_at, True)
            restarting.join()
            peer.ask("stop")
            time.sleep(0.5)
        finally:
            exited = "cleanly"
            try:
                output = perf.close()
            except (AssertionError, subprocess.TimeoutExpired) as e:  # unattended: say so, keep the figures
                output = perf.output()
                exited = f"not cleanly ({type(e).__name__}: {str(e).splitlines()[0]}); killed"
                print(output[-5000:], file=sys.stderr)  # what it said before it hung or failed
                perf.proc.kill()  # a hung performer must not stay in the Link session of later runs
                perf.proc.wait()
        time.sleep(0.3)
        captured = cap.close()
        for d in dumps:  # stopped first: what it printed is all in its file
            _stop(d.proc, signal.SIGINT)
        heard = [after_last_start(dumps[0].events()), *(d.events() for d in dumps[1:])]
    for d in dumps:
        d.close()
    ideal, nearest, bar0 = line.ideal, line.nearest, line.bar0

    sessions = captured["sessions"]
    period = PERIOD_FRAMES / RATE
    # Pulses numbered by count within a session the capture heard whole (the first from the
    # Start; after the restart the first by its nearest tick), else each by its nearest tick.
    errors: dict[int, tuple[list[tuple[float, float]], list[tuple[float, float]], list[tuple[float, float]]]] = {}
    started = False
    for s in sessions:
        k = s["n"]
        events = [e for e in captured["events"] if e[3] == k]
        if k == 0:
            events = after_last_start(events)
            started = bool(events)
        whole = not s["missed_cycles"]
        pulse_err, note_err, notes = errors.setdefault(k, ([], [], []))
        n: int | None = -1 if k == 0 else None
        for wall, _, b, _ in events:
            if b == [0xF8]:
                n = nearest(wall) if n is None else n + 1
            if b == [0xF8] or is_note_on(b):
                tick = n if whole and n is not None else nearest(wall)
                err = (wall - ideal(tick / 24)) * 1000
                (pulse_err if b == [0xF8] else note_err).append((wall, err))
                if is_note_on(b):
                    notes.append((wall, err))

    def missed(events: list[tuple[int, list[int]]]) -> int:
        """Gaps of two ticks or more between pulses the dump heard, in ticks of the faster
        tempo (a tick of the slower is 1.1 of them: still one)."""
        frames = np.array([f for f, b in events if b == [0xF8]], dtype=float)
        return int(np.sum(np.maximum(np.rint(np.diff(frames) / (RATE * 60 / (faster * 24))) - 1, 0)))

    def part(keys: list[int], since: float = -math.inf, until: float = math.inf, whole: bool = True) -> dict:
        """Figures of the capture's sessions ``keys``, events in [since, until) only; ``whole``:
        with the dump's missed ticks (whole sessions only)."""
        pulse = [e for k in keys for w, e in errors.get(k, ([], [], []))[0] if since <= w < until]
        note = [e for k in keys for w, e in errors.get(k, ([], [], []))[1] if since <= w < until]
        notes = [x for k in keys for x in errors.get(k, ([], [], []))[2] if since <= x[0] < until]
        return {
            "pulses": len(pulse),
            "missed_ticks": sum(missed(heard[k]) for k in keys if k < len(heard)) if whole else None,
            "note_ons": len(note),
            "note_on_error": stats(np.abs(note)),
            "note_on_error_signed_mean_ms": round(float(np.mean(note)), 3) if note else None,
            "bridge_pulse_error": stats(np.abs(pulse)),
            "capture_missed_cycles": sum(sessions[k]["missed_cycles"] for k in keys if k < len(sessions)),
            "ticks_numbered": "by count"
            if not any(sessions[k]["missed_cycles"] for k in keys if k < len(sessions))
            else "by nearest tick (the capture missed a cycle)",
            "worst_note_ons": [  # [seconds from the peer's start, error ms]: where to look
                [round(w - bar0, 3), round(e, 3)] for w, e in sorted(notes, key=lambda x: -abs(x[1]))[:3]
            ],
        }

    later = [s["n"] for s in sessions[1:]]
    back = min([when["answered"], *(s["opened"] for s in sessions[1:])])
    first_notes = [w for k in later for w, _ in errors[k][2]]
    on_grid = [w for k in later for w, e in errors[k][2] if abs(e) <= 2 * period * 1000]
    first_pulse = [e[0] for e in captured["events"] if e[3] > 0 and e[2] == [0xF8]]
    last_before = max((e[0] for e in captured["events"] if e[3] == 0), default=None)
    first_after = min((e[0] for e in captured["events"] if e[3] > 0), default=None)
    said = [
        ln.strip() for ln in output.splitlines() if "JACK server" in ln or "reconnected" in ln or "waiting for" in ln
    ]
    answered = re.findall(r"JACK server answering again at perf_counter ([0-9.]+) s", output)
    reconnected = re.findall(r"reconnected \S+ to cap-\S+, ([0-9.]+) s after the server answered", output)
    return {
        "bpm": bpm,
        "tempo_change_to": faster,
        "seconds": seconds,
        "restart_at_s": restart_at,
        "cursor_moving_and_window": [True, True],
        "started_from_peer": started,
        # outside the restart: before the kill, and from SETTLE s after the server's return
        "before_restart": part([0]),
        "after_restart": part(later, since=back + SETTLE, whole=False),
        "restart_window": part(later, until=back + SETTLE, whole=False),  # the first SETTLE s back
        "after_restart_whole": part(later),
        "restart": {
            "server_down_s": round(back - when["killed"], 3),
            "capture_sessions": [
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in s.items()} for s in sessions
            ],
            "data_gap_s": round(first_after - last_before, 3) if first_after and last_before else None,
            # where the time goes: the server back -> the performer's rig sees it -> its ports
            # reopened and the capture reconnected -> the first note-on the capture heard
            "server_back_to_rig_client_s": round(float(answered[0]) - back, 3) if answered else None,
            "rig_client_to_capture_reconnected_s": float(reconnected[0]) if reconnected else None,
            "server_back_to_first_note_on_s": round(first_notes[0] - back, 3) if first_notes else None,
            "server_back_to_first_note_on_on_grid_s": round(on_grid[0] - back, 3) if on_grid else None,
            # the clock (the bridge) never rests: the port's own recovery, whatever the pattern plays
            "server_back_to_first_pulse_s": round(first_pulse[0] - back, 3) if first_pulse else None,
            "performer_said": said,
        },
        "start_vs_peer_bar_ms": round((_origin(output) - bar0) * 1000, 3),
        # notes sounding when the server died: their note-offs died with it (not stuck: the
        # destination's server went too); stuck = unended in what the last server heard
        "performer_exit": exited,
        "notes_cut_by_restart": pairing(heard[0]),
        "stuck_notes": pairing(heard[-1]) if len(heard) > 1 else None,
        "dump_pulses_before_after": [sum(b == [0xF8] for _, b in h) for h in heard],
    }


def decode_latency() -> dict:
    from performer.control import ControlState
    from performer.decoder import pattern_for
    from rvae.checkpoint import load_checkpoint

    ckpt = load_checkpoint(CKPT)
    rng = np.random.default_rng(0)
    times = []
    for i in range(2050):
        z = tuple(rng.uniform(-3, 3, 2))
        t = time.perf_counter()
        pattern_for(ckpt, ControlState(z=z), z, i, 120.0)
        if i >= 50:
            times.append((time.perf_counter() - t) * 1000)
    return stats(times)


def frame_times() -> dict:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    from performer.control import Controls, ControlState
    from performer.decoder import pattern_for
    from performer.sequencer import PlayerView
    from performer.ui import run_window
    from rvae.checkpoint import load_checkpoint

    ckpt = load_checkpoint(CKPT)
    controls = Controls(ControlState())
    view = {"v": PlayerView()}
    t0, k = time.perf_counter(), [0]

    def on_frame() -> None:
        k[0] += 1
        a = k[0] / 20
        z = (2 * math.cos(a), 2 * math.sin(1.3 * a))
        controls.update(z=z, threshold=0.4 + 0.2 * ((k[0] // 60) % 2))
        beat = (time.perf_counter() - t0) * 2
        if k[0] % 15 == 0:
            view["v"] = PlayerView(
                beat=beat, pattern=pattern_for(ckpt, controls.get(), z, k[0], 120.0), state="playing"
            )
        else:
            view["v"] = PlayerView(beat=beat, pattern=view["v"].pattern, state="playing")

    times = run_window(ckpt, controls, lambda: view["v"], threading.Event(), max_frames=600, on_frame=on_frame)
    return stats(np.asarray(times) * 1000)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0, help="per tempo (0: no per-tempo Link runs)")
    ap.add_argument("--soak", type=float, default=180.0, help="soak seconds at 174 BPM")
    ap.add_argument("--window-soak", type=float, default=60.0, help="seconds at 174 BPM with the window drawing")
    ap.add_argument("--only-soak", action="store_true", help="skip the per-tempo runs")
    ap.add_argument("--link-only", action="store_true", help="only the Link runs")
    ap.add_argument(
        "--link-soak", type=float, default=0.0, help="seconds at 174 BPM on Link, cursor moving, window drawing"
    )
    ap.add_argument(
        "--restart-at",
        type=float,
        default=0.0,
        help="in the Link soak: kill and restart JACK at this second",
    )
    args = ap.parse_args()
    from performer.link_peer import session_lock
    from performer.testing import jack_server

    result: dict[str, object] = {
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, Python "
        f"{platform.python_version()}",
        "jack": "jackd -d dummy -r 48000 -p 128 (period 2.67 ms)",
        "load_average_at_start": os.getloadavg(),
    }
    if not args.link_only:
        result["decode_pattern"] = decode_latency()
        result["frame"] = frame_times()
    if args.restart_at and not 0 < args.restart_at < args.link_soak - 5:
        ap.error("--restart-at needs --link-soak at least 5 s longer")
    with jack_server("rvae-bench") as server:  # the same rig as the tests, in its turn
        with session_lock():  # every Link peer on the machine is one session: the tests' too
            if args.seconds:
                result["link"] = [link(b, args.seconds) for b in (90, 120, 174)]
            if args.link_soak and args.restart_at:
                result["link_soak_restart"] = link_restart(174, args.link_soak, args.restart_at, server)
            elif args.link_soak:
                result["link_soak"] = link(174, args.link_soak, move=True, window=True)
        if args.link_only:
            args.soak = args.window_soak = 0
        elif not args.only_soak:
            result["internal"] = [internal(b, args.seconds) for b in (90, 120, 174)]
            result["external"] = [external(b, args.seconds) for b in (90, 120, 174)]
        if args.soak:
            result["soak"] = internal(174, args.soak, move=True)
        if args.window_soak:  # the same with the window drawing 60 frames a second
            result["soak_window"] = internal(174, args.window_soak, move=True, window=True)
    result["load_average_at_end"] = os.getloadavg()
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
