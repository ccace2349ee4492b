"""Learning on stage, measured on real JACK ports (dummy driver, -p 128 at 48 kHz: one period
is 2.67 ms). Prints JSON.

``rvae perform --headless --learn-in`` on its internal clock at 174 BPM, the bundled 4/4
model (93 loops); a sender thread plays a groove into its learn input, each note sent half a
JACK period before its ideal tick (as the performer's own output does: rtmidi hands it to
JACK at the next cycle's start, the boundary nearest the tick). Once 8 bars are captured,
``/rvae/learn 8`` five times, one after the other, the music playing throughout:

- learn: from the request to the new model playing (the bar line its first pattern takes
  over at), as the performer reports it and as this script sees it (request sent -> that
  bar line's time, both on perf_counter's clock); p50 and max over the learns; and where
  the time went, from the performer's "learn timing" log line: the request to the job sent
  (the learn thread's poll, saving the bars), the learner's answer (training, of which
  waiting for a core, and writing the checkpoint), loading it in the performer, and the
  new pattern's wait for the bar line (inherent: up to a bar, 1.38 s at 174 BPM);
- timing: note-on error against the ideal tick over the whole run and inside the training
  windows (request -> new model playing), from performer.testing's TimedCapture (each event
  stamped with its JACK cycle's start); missed ticks and stuck notes from jack_midi_dump;
- capture: each note sent, found in the bar files the performer wrote, on its step; its
  microtiming error (captured position - ideal tick, ms) against one JACK period.

Usage: python scripts/bench_learn.py [--bpm 174] [--learns 5] [--bars FILE.mid]
(the figures in the README: on a quiet machine, ``.venv/bin/python scripts/bench_learn.py``)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

import mido
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_performer import _origin, after_last_start, is_note_on, pairing, stats  # noqa: E402

from performer.testing import UNSEEN_GROOVE  # noqa: E402

RATE, PERIOD_FRAMES = 48000, 128
PERIOD = PERIOD_FRAMES / RATE
CKPT = ROOT / "checkpoints" / "groove-4-4.pt"
GROOVE = UNSEEN_GROOVE


def played_bars(path: str | None) -> list[list[tuple[int, int, int]]]:
    """What the drummer plays, bar after bar: GROOVE over and over (one onset pattern: what
    a learn of it needs is stage_updates' least), or the first 8 bars of a 4/4 MIDI file,
    each on its steps (their microtiming dropped), for 8 different bars."""
    if path is None:
        return [GROOVE]
    from rvae.checkpoint import load_checkpoint
    from rvae.midi_io import read_midi

    ckpt = load_checkpoint(CKPT)
    loops = read_midi(path, ckpt.grid, ckpt.kit).loops[:8]
    return [[(s, int(ckpt.kit.out_notes[i]), v) for s, i, v, _ in g.hits()] for g in loops]


class Drummer(threading.Thread):
    """Plays ``bars`` in turn from bar ``first`` on, each note half a period before its
    ideal time on the performer's clock (``origin``: its beat 0 on perf_counter)."""

    def __init__(self, name: str, origin: float, bpm: float, first: int, bars: list) -> None:
        super().__init__(name="drummer", daemon=True)
        from performer.ports import open_output

        self.out = open_output(name, "jack")
        self.origin, self.tick, self.first, self.bars = origin, 60.0 / (bpm * 24), first, bars
        self.stop_event = threading.Event()
        self.sent: list[tuple[int, int, int, int]] = []  # (bar from 0, step, note, velocity)

    def run(self) -> None:
        try:  # as the performer's clock thread: a busy machine delays a real-time thread less
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(20))
        except (AttributeError, OSError):
            pass
        bar = self.first
        while not self.stop_event.is_set():
            for step, note, velocity in sorted(self.bars[bar % len(self.bars)]):
                when = self.origin + (bar * 96 + step) * self.tick - PERIOD / 2
                wait = when - time.perf_counter()
                if wait > 0.002:
                    time.sleep(wait - 0.002)
                while time.perf_counter() < when:  # the last 2 ms spun: sleep wakes late
                    pass
                self.out.send(mido.Message("note_on", channel=9, note=note, velocity=velocity))
                self.out.send(mido.Message("note_off", channel=9, note=note, velocity=0))
                self.sent.append((bar, step, note, velocity))
            bar += 1

    def close(self) -> None:
        self.stop_event.set()
        self.join(5)
        self.out.close()


def wait_for(predicate, timeout: float, what: str, output) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}:\n{output()[-3000:]}")
        time.sleep(0.05)


def run(bpm: float, learns: int, bars: list) -> dict:
    from performer.testing import MidiDump, Performer, TimedCapture, connect, wait_for_port
    from rvae.checkpoint import load_checkpoint
    from rvae.midi_io import read_midi

    ckpt = load_checkpoint(CKPT)
    session = Path(tempfile.mkdtemp(prefix="bench-learn-"))
    tick = 60.0 / (bpm * 24)
    asked: list[float] = []
    with (
        TimedCapture("cap-learn") as cap,
        TimedCapture("cap-sent") as cap_sent,
        MidiDump("dump-learn", absolute=True) as dump,
    ):
        perf = Performer("perf-learn", CKPT, "--bpm", f"{bpm:g}", "--learn-in", "played", "--learn-save", str(session))
        drummer = None
        try:
            played = wait_for_port("played:played", "input", timeout=10)
            connect(perf.port, cap.port)
            connect(perf.port, dump.port)
            wait_for(lambda: "learner process pid" in perf.output(), 30, "the learner", perf.output)
            time.sleep(0.3)
            perf.send("/rvae/stop")
            time.sleep(0.2)
            perf.send("/rvae/start")
            wait_for(lambda: len(re.findall("beat 0 at perf_counter", perf.output())) >= 2, 5, "start", perf.output)
            origin = _origin(perf.output())
            # from bar 2: the sender's port is ready
            drummer = Drummer("bench-drummer", origin, bpm, first=1, bars=bars)
            connect("bench-drummer:bench-drummer", played)
            connect("bench-drummer:bench-drummer", cap_sent.port)
            drummer.start()
            wait_for(lambda: len(list(session.glob("bar-*.mid"))) >= 8, 60, "8 captured bars", perf.output)
            for k in range(learns):
                asked.append(time.perf_counter())
                perf.send("/rvae/learn", 8)
                wait_for(
                    lambda k=k: len(re.findall("plays from bar", perf.output())) > k, 120, f"learn {k + 1}", perf.output
                )
            time.sleep(2.0)
        finally:
            if drummer is not None:
                drummer.close()
            output = perf.close()
        time.sleep(0.3)
        captured = cap.close()
        arrived = [w for w, _, b in cap_sent.close()["events"] if is_note_on(b)]  # the drummer's notes, in JACK
        heard = after_last_start(dump.events())

    played_at = [
        float(t)
        for t in re.findall(r"plays from bar \d+, [\d.]+ s after the request .*?at perf_counter ([\d.]+)", output)
    ]
    reported = [float(s) for s in re.findall(r"plays from bar \d+, ([\d.]+) s after the request", output)]
    training = [float(s) for s in re.findall(r"\(training ([\d.]+) s;", output)]
    parts = [json.loads(t) for t in re.findall(r"learn timing (\{.*\})", output)]
    seen = [p - a for a, p in zip(asked, played_at, strict=False)]
    windows = list(zip(asked, played_at, strict=False))

    # timing against the ideal tick, as scripts/bench_performer.py measures it
    events = after_last_start(captured["events"])
    frames = np.array([f for f, b in heard if b == [0xF8]], dtype=float)
    by_count = sum(b == [0xF8] for *_, b in events) == len(frames) and not captured["missed_cycles"]
    errors, during, n = [], [], -1
    for wall, _, b in events:
        if b == [0xF8]:
            n += 1
        if is_note_on(b):
            k = n if by_count else round((wall - origin) / tick)
            e = (wall - origin - k * tick) * 1000
            errors.append(abs(e))
            if any(a <= wall <= p for a, p in windows):
                during.append(abs(e))
    gaps = np.rint(np.diff(frames) / (RATE * tick))
    # the same inside the training windows, from the capture's stamps (each pulse's JACK cycle
    # on perf_counter): a pulse a tick or more after the one before it, as [learn, seconds
    # after its request, ms since the pulse before], to set beside parts_s (learner, load)
    walls = np.array([w for w, _, b in events if b == [0xF8]], dtype=float)
    slow = np.flatnonzero(np.rint(np.diff(walls) / tick) >= 2) + 1
    late_in_training = [
        [k + 1, round(walls[i] - a, 3), round((walls[i] - walls[i - 1]) * 1000, 1)]
        for i in slow
        for k, (a, p) in enumerate(windows)
        if a <= walls[i] <= p
    ]

    # capture: every note sent, found on its step in the bar file the performer wrote
    files = {int(p.stem.split("-")[1]): p for p in session.glob("bar-*.mid")}
    lookup = ckpt.kit.lookup()
    found, misplaced, lost, micro_ms, velocity_off = 0, 0, 0, [], 0
    capture_ms, sender_ms = [], []  # captured - when it reached JACK; when it reached JACK - its ideal tick
    got_bars: dict[int, dict] = {}
    sent = drummer.sent if drummer is not None else []
    first_bar = min((b for b, *_ in sent), default=0)
    same = len(arrived) == len(sent)  # every note the drummer sent seen in JACK: the k-th arrived is the k-th sent
    for k, (bar, step, note, velocity) in enumerate(sent):
        number = bar - first_bar + 1  # the first bar played is the first file
        if number not in files:
            continue  # still being played at the end
        if number not in got_bars:
            (loop,) = read_midi(files[number], ckpt.grid, ckpt.kit).loops
            got_bars[number] = {(i, s): (v, o) for s, i, v, o in loop.hits()}
        hit = got_bars[number].get((int(lookup[note]), step))
        if hit is None:
            near = [k for k in got_bars[number] if k[0] == lookup[note] and abs(k[1] - step) <= 1]
            misplaced += bool(near)
            lost += not near
            continue
        found += 1
        velocity_off = max(velocity_off, abs(hit[0] - velocity))
        micro_ms.append(hit[1] * 0.5 * tick * 1000)  # offset in half steps -> ms after the ideal tick
        if same:
            late = (arrived[k] - origin - (bar * 96 + step) * tick) * 1000
            sender_ms.append(late)
            capture_ms.append(micro_ms[-1] - late)
    micro = np.abs(micro_ms)
    return {
        "bpm": bpm,
        "base_loops": ckpt.n_kept_loops,
        "new_bars_per_learn": 8,
        "learn_to_playing_s": {
            "reported": [round(x, 3) for x in reported],
            "seen_by_sender": [round(x, 3) for x in seen],
            "p50": round(float(np.median(seen)), 3) if seen else None,
            "max": round(float(np.max(seen)), 3) if seen else None,
            # the OSC message's way to the learn thread's next turn (it polls every 20 ms)
            "request_to_seen": [round(a - b, 3) for a, b in zip(seen, reported, strict=False)],
        },
        "training_s": {"each": training, "p50": round(float(np.median(training)), 3) if training else None},
        "parts_s": {
            k: {"each": each, "p50": round(float(np.median(each)), 3), "max": round(float(np.max(each)), 3)}
            for k in (parts[0] if parts else {})
            if (each := [p[k] for p in parts if p.get(k) is not None])
        },
        "note_on_error": stats(errors),
        "note_on_error_during_training": stats(during),
        "ticks_numbered": "by count" if by_count else "by nearest tick (the capture missed a cycle)",
        "pulses": len(frames),
        # a pulse more than half a tick late: the gap before it rounds to 2 ticks (and, if the
        # next is on time again, the one after to 0); counted once, by the long gap
        "missed_ticks": int(np.sum(np.maximum(gaps - 1, 0))) if len(gaps) else None,
        "late_pulses_during_training": len(late_in_training),
        "late_pulses_during_training_at": late_in_training,  # [learn, s after the request, ms since the pulse before]
        "pulse_interval_max_ms": round(float(np.diff(frames).max() / RATE * 1000), 3) if len(frames) > 1 else None,
        "pulse_interval_ideal_ms": round(tick * 1000, 3),
        "stuck_notes": pairing(heard),
        "capture": {
            "notes_sent": len(sent),
            "on_their_step": found,
            "on_a_neighbour_step": misplaced,
            "velocity_max_error": velocity_off,
            "not_found": lost,
            "microtiming_error_ms": stats(micro),
            "signed_mean_ms": round(float(np.mean(micro_ms)), 3) if micro_ms else None,
            "within_one_period": int(np.sum(micro <= PERIOD * 1000)),
            # the error split: the drummer's own lateness in reaching JACK, and the capture's
            # (captured position - the JACK cycle that carried the note; the cycle's start is
            # when a JACK client can first see it)
            "sender_error_ms": stats(np.abs(sender_ms)),
            "capture_vs_jack_arrival_ms": stats(np.abs(capture_ms)),
            "capture_vs_jack_arrival_signed_mean_ms": round(float(np.mean(capture_ms)), 3) if capture_ms else None,
        },
        "session": str(session),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bpm", type=float, default=174.0)
    ap.add_argument("--learns", type=int, default=5)
    ap.add_argument("--bars", metavar="MIDI", help="play this 4/4 file's first 8 bars (default: one groove)")
    args = ap.parse_args()
    bars = played_bars(args.bars)
    from performer.testing import jack_server

    result = {
        "machine": f"{platform.node()}: {os.cpu_count()} cores, {platform.machine()}, "
        f"Python {platform.python_version()}",
        "load_average_before": [round(x, 2) for x in os.getloadavg()],
        "jack": "jackd -d dummy -r 48000 -p 128 (period 2.67 ms)",
    }
    with jack_server("rvae-bench"):
        result |= run(args.bpm, args.learns, bars) | {"played": args.bars or "UNSEEN_GROOVE, every bar"}
    result["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
