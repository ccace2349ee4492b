"""The performer end to end, as a user runs it: ``rvae perform --headless`` in its own
process, on real JACK MIDI ports (dummy driver), recorded by a real JACK input; clock
from the performer itself or from ``jack_midi_clock`` driven by ``jack_transport``.

Notes are checked in pulses, not milliseconds: with ``--microtiming 0`` every hit leaves
on a clock pulse, so the number of pulses seen before a note says which step it is on.
(Millisecond timing is measured by scripts/bench_performer.py, not asserted here.)
"""

from __future__ import annotations

import faulthandler
import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import mido
import pytest
from conftest import REPO

from performer.control import ControlState
from performer.decoder import pattern_for
from performer.ports import open_output
from performer.testing import MidiClock, MidiDump, Performer, Transport, connect, server_log, wait_for_port
from performer.ui import pattern_text
from rvae.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow
CKPT_44 = REPO / "checkpoints" / "groove-4-4.pt"
CKPT_68 = REPO / "checkpoints" / "demo-6-8.pt"


def expected(ckpt_path, z, density=()) -> dict[int, list[int]]:
    """step -> sorted notes of the pattern the performer should play at z."""
    ckpt = load_checkpoint(ckpt_path)
    p = pattern_for(ckpt, ControlState(z=z, microtiming=0.0, density=density), z, 0, 120.0)
    steps: dict[int, list[int]] = {}
    for s, n in zip(p.steps.tolist(), p.notes.tolist(), strict=True):
        steps.setdefault(s, []).append(n)
    return {s: sorted(v) for s, v in steps.items()}, p.grid.steps


def notes_by_pulse(log, after_start: bool = True) -> list[tuple[int, int]]:
    """(pulse index since the last Start, note) of each note-on; pulse 0 is the first clock."""
    pulses, out = -1, []
    for _, m in log:
        if m.type == "start":
            pulses, out = -1, []
        elif m.type == "clock":
            pulses += 1
        elif m.type == "note_on" and m.velocity > 0 and pulses >= 0:
            out.append((pulses, m.note))
    return out


PERIOD = 128  # frames per JACK cycle (JACKD_ARGS: -p 128)


def by_cycle(events: list[tuple[int, list[int]]]) -> list[tuple[int, mido.Message]]:
    """jack_midi_dump's (frame, bytes) -> (frame, message), each cycle's clock messages first.

    Following a clock, a hit leaves once its pulse has arrived, so it reaches the listener
    in that pulse's JACK cycle or a later one. In the same cycle (the performer's output
    client ran after it had reacted) rtmidi writes it at frame 0, ahead of the pulse's own
    frame: counted in frame order, it would ride on the pulse before. Which cycle it is in
    is what the performer decides; where in the cycle is rtmidi's and JACK's."""
    realtime = {0xF8, 0xFA, 0xFB, 0xFC}  # clock, Start, Continue, Stop: from the clock source
    ordered = sorted(events, key=lambda e: (e[0] // PERIOD, e[1][0] not in realtime))  # stable: else in order
    return [(f, mido.Message.from_bytes(b)) for f, b in ordered]


class Heard:
    """A JACK input that keeps what it hears, for the checks here: ``jack_midi_dump`` (C),
    each event with its frame. Not a Python JACK client (performer.testing.Recorder): its
    callback needs the GIL of the test's own process and, the machine loaded, a late
    callback loses the JACK cycles it misses, pulses and notes with them: the failures seen
    under load were a note missing ({96: [36]} != {96: [36, 49]}), every note after some
    point one pulse off, and a note-off missing ("left sounding").

    ``clock_first``: within one cycle, put the clock source's messages before the notes (see
    ``by_cycle``); for a performer following another client's clock. Its own clock and notes
    come through one port in the order it sent them."""

    def __init__(self, name: str, clock_first: bool = False) -> None:
        self.dump = MidiDump(name, absolute=True)
        self.port = self.dump.port
        self.clock_first = clock_first
        self._after = -1  # cycles up to this one are cleared

    @property
    def log(self) -> list[tuple[int, mido.Message]]:
        events = [(f, b) for f, b in self.dump.events() if f // PERIOD > self._after]
        if self.clock_first:
            return by_cycle(events)
        return [(f, mido.Message.from_bytes(b)) for f, b in events]

    def messages(self, *types: str) -> list[mido.Message]:
        return [m for _, m in self.log if not types or m.type in types]

    def clear(self) -> None:
        events = self.dump.events()
        self._after = events[-1][0] // PERIOD if events else -1

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                return predicate(self)
            time.sleep(0.02)
        return True

    def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> None:
        """Wait until nothing new has arrived for ``quiet`` seconds."""
        deadline, seen = time.monotonic() + timeout, -1
        while time.monotonic() < deadline:
            n = len(self.dump.events())
            if n == seen:
                return
            seen = n
            time.sleep(quiet)

    def __enter__(self) -> Heard:
        return self

    def __exit__(self, *exc) -> None:
        self.dump.close()


def stopped_and_silenced(rec) -> bool:
    """A Stop came, and after it the performer's All Notes Off (it silences on Stop): under
    load its note-offs can come later than any fixed quiet time."""
    log = rec.messages()
    stops = [i for i, m in enumerate(log) if m.type == "stop"]
    return bool(stops) and any(m.type == "control_change" and m.control == 123 for m in log[stops[-1] :])


def pulses_since_start(rec) -> int:
    n = -1
    for m in rec.messages("start", "clock"):
        n = 0 if m.type == "start" else (n + 1 if n >= 0 else n)
    return n


def wait_pulses(rec, n: int, timeout: float = 15.0) -> bool:
    """Wait for n clock pulses after the last Start."""
    return rec.wait_for(lambda r: pulses_since_start(r) >= n, timeout)


def check_against_pattern(played, pattern, loop_steps, bars=2):
    got: dict[int, list[int]] = {}
    for pulse, note in played:
        if pulse < bars * loop_steps:
            got.setdefault(pulse, []).append(note)
    want = {s + k * loop_steps: n for k in range(bars) for s, n in pattern.items()}
    assert {s: sorted(v) for s, v in got.items()} == want


def pairs_ok(log) -> None:
    """Every note-on has its note-off after it, and nothing is left sounding."""
    sounding: dict[int, int] = {}
    for _, m in log:
        if m.type == "note_on" and m.velocity > 0:
            sounding[m.note] = sounding.get(m.note, 0) + 1
        elif m.type == "note_off" or (m.type == "note_on" and m.velocity == 0):
            if sounding.get(m.note):
                sounding[m.note] -= 1
    assert not any(sounding.values()), f"left sounding: {sounding}"


@pytest.mark.parametrize("ckpt,pulses_per_bar", [(CKPT_44, 96), (CKPT_68, 72)])
def test_internal_clock_plays_the_pattern_on_its_pulses(jack_server, ckpt, pulses_per_bar):
    z = (0.3, -0.4)
    pattern, loop_steps = expected(ckpt, z)
    assert loop_steps == pulses_per_bar
    with Heard("heard-int") as rec, Performer("perf-int", ckpt, "--bpm", "120", "--z", *map(str, z)) as perf:
        connect(perf.port, rec.port)
        assert wait_for_output(perf, "pattern 1 at"), perf.output()  # shown once it plays
        stop(perf)
        perf.send("/rvae/start")  # Start, then pulse 0 is bar 1, beat 1
        assert wait_pulses(rec, 2 * pulses_per_bar + 30)
        out = perf.close()
        rec.settle()
        log = rec.log
    # torch, the model and the rest kept out of garbage collection, whose full pass over them
    # took 40 ms: a pulse held that long would be late
    assert re.search(r"garbage collection: \d{5,} objects frozen", out), out
    check_against_pattern(notes_by_pulse(log), pattern, loop_steps)
    pairs_ok(log)
    assert any(m.type == "control_change" and m.control == 123 for _, m in log[-20:])  # All Notes Off at the end
    # the clock went out at 24 pulses per quarter: 120 BPM = 20.8 ms a pulse, on average
    last_start = max(i for i, (_, m) in enumerate(log) if m.type == "start")
    frames = [f for f, m in log[last_start:] if m.type == "clock"]
    period = (frames[-1] - frames[10]) / (len(frames) - 11) / 48000  # JACKD_ARGS: -r 48000
    assert period == pytest.approx(60 / 120 / 24, rel=0.02)


def test_follows_jack_midi_clock_stop_silences_start_restarts(jack_server):
    z = (-0.5, 0.5)
    pattern, loop_steps = expected(CKPT_44, z)
    with (
        Heard("heard-ext", clock_first=True) as rec,
        Transport() as transport,
        MidiClock(bpm=120) as clock,
        Performer(
            "perf-ext", CKPT_44, "--clock", "midi", "--midi-in", "perf-ext-in", "--gate", "0.9", "--z", *map(str, z)
        ) as perf,
    ):
        inp = wait_for_port("perf-ext-in:perf-ext-in", "input", timeout=10)
        connect(clock.port, inp)
        connect(clock.port, rec.port)
        connect(perf.port, rec.port)
        time.sleep(0.3)
        transport.play()
        assert wait_pulses(rec, 2 * loop_steps + 30)
        check_against_pattern(notes_by_pulse(rec.log), pattern, loop_steps)
        transport.stop()
        assert rec.wait_for(stopped_and_silenced, timeout=10)
        pairs_ok(rec.log)  # Stop left nothing sounding
        rec.clear()
        transport.locate(0)
        time.sleep(0.3)  # let the locate land before rolling, so jack_midi_clock sees frame 0
        transport.play()  # jack_midi_clock sends Start from frame 0: bar 1 again
        assert wait_pulses(rec, loop_steps + 30)
        assert [m.type for m in rec.messages("start", "continue")][:1] == ["start"]
        check_against_pattern(notes_by_pulse(rec.log), pattern, loop_steps, bars=1)
        transport.stop()
        perf.close()
        rec.settle()
        pairs_ok(rec.log)
        heard = rec.log
    # rtmidi writes at a cycle's start, the clock anywhere in it: why the cycle is the unit above
    assert {f % PERIOD for f, m in heard if m.type == "note_on"} == {0}
    assert len({f % PERIOD for f, m in heard if m.type == "clock"}) > 1


def test_osc_xy_changes_the_pattern_that_plays(jack_server):
    a, b = (-2.0, -2.0), (2.0, 2.0)
    pa, loop_steps = expected(CKPT_44, a)
    pb, _ = expected(CKPT_44, b)
    assert pa != pb
    with Heard("heard-osc") as rec, Performer("perf-osc", CKPT_44, "--bpm", "160", "--z", *map(str, a)) as perf:
        connect(perf.port, rec.port)
        assert wait_for_output(perf, "pattern 1 at"), perf.output()  # shown once it plays
        restart_and_check_first_bar(perf, rec, pa, loop_steps)
        perf.send("/rvae/xy", *b)
        assert wait_for_output(perf, shown(CKPT_44, b)), diagnose(perf, jack_server)  # it took over
        restart_and_check_first_bar(perf, rec, pb, loop_steps)
        perf.close()


def stop(perf) -> None:
    """Stop over OSC and wait until the performer says it stopped: the Player reads the
    controls' level each turn, so a start sent before it saw the stop would be no restart."""
    stops = perf.output().count("stopped at bar")
    perf.send("/rvae/stop")
    assert wait_for(lambda: perf.output().count("stopped at bar") > stops), perf.output()


def restart_and_check_first_bar(perf, rec, pattern, loop_steps: int) -> None:
    """Stop and start over OSC; the first bar after Start plays ``pattern`` on its pulses."""
    stop(perf)
    rec.clear()
    perf.send("/rvae/start")
    assert wait_pulses(rec, loop_steps + 10)
    check_against_pattern(notes_by_pulse(rec.log), pattern, loop_steps, bars=1)


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return condition()
        time.sleep(0.05)
    return True


def wait_for_output(perf, text: str, timeout: float = 10.0) -> bool:
    """Poll what the performer has printed until ``text`` appears."""
    return wait_for(lambda: text in perf.output() or perf.proc.poll() is not None, timeout) and text in perf.output()


def shown(ckpt_path, z, density=()) -> str:
    """How the console shows the pattern the performer should play at z, once it takes over."""
    ckpt = load_checkpoint(ckpt_path)
    p = pattern_for(ckpt, ControlState(z=z, microtiming=0.0, density=density), z, 0, 120.0)
    at = ", ".join(f"{v:+.2f}" for v in p.z)
    return f"at z = ({at}), {len(p.steps)} hits:\n{pattern_text(p, ckpt.kit.names)}"


def tasks(pid: int) -> list[str]:
    """Each thread of process ``pid`` as the kernel sees it: name, state, where it sleeps."""
    rows = []
    for task in sorted(glob.glob(f"/proc/{pid}/task/*")):
        try:
            comm = open(f"{task}/comm").read().strip()
            state = open(f"{task}/stat").read().rsplit(")", 1)[1].split()[0]
            wchan = open(f"{task}/wchan").read().strip()
        except OSError:
            continue
        rows.append(f"{task.rsplit('/', 1)[1]} {comm} {state} {wchan}")
    return rows


def diagnose(perf, server: str, sent: MidiDump | None = None) -> str:
    """What a failing wait shows: the performer's output with every thread's stack (SIGUSR1),
    every JACK port and its connections, what the server said went wrong, and what left the
    test's own output (``sent``)."""
    if perf.proc.poll() is None:
        perf.proc.send_signal(signal.SIGUSR1)
        time.sleep(0.5)
    ports = subprocess.run(["jack_lsp", "-c"], capture_output=True, text=True).stdout
    with tempfile.TemporaryFile("w+") as f:  # this process's threads too: its recorders' callbacks run Python
        faulthandler.dump_traceback(f, all_threads=True)
        f.seek(0)
        here = f.read()
    out = f"{perf.output()}\n--- jack_lsp -c:\n{ports}\n--- jackd:\n{server_log(server)}"
    out += f"\n--- the test's threads:\n{here}"
    for pid, who in ((perf.proc.pid, "performer"), (os.getpid(), "test")):  # every thread, C ones too
        out += f"\n--- {who} tasks (comm, state, wchan):\n" + "\n".join(tasks(pid))
    return out + (f"\n--- sent:\n{sent.lines()}" if sent is not None else "")


def test_midi_cc_moves_the_cursor_with_the_internal_clock(jack_server):
    """--cc-x/--cc-y on --midi-in while the performer keeps its own clock: a controller's
    CC 127 on both axes takes the cursor to the top right corner of the model's own square
    (±8 for the bundled 4/4 model, whose training loops reach |z| 7); the console says so and
    that corner's pattern plays. --cc-density 30: CC 31 at 0 thins the snare (instrument 2)
    to its sparsest, CC 32 at 127 fills the hats."""
    e = load_checkpoint(CKPT_44).extent
    a, b = (-2.0, -2.0), (e, e)
    pa, loop_steps = expected(CKPT_44, a)
    pb, _ = expected(CKPT_44, b)
    pd, _ = expected(CKPT_44, b, (0.0, -1.0, 1.0))
    assert pa != pb and pd != pb
    assert shown(CKPT_44, b, (0.0, -1.0, 0.0)) != shown(CKPT_44, b, (0.0, -1.0, 1.0)) != shown(CKPT_44, b)
    cc = ("--midi-in", "perf-cc-in", "--cc-x", "20", "--cc-y", "21", "--cc-density", "30")
    with (
        Heard("heard-cc") as rec,
        Performer("perf-cc", CKPT_44, "--bpm", "160", "--z", *map(str, a), *cc, verbose=2) as perf,
        open_output("cc-knobs", "jack") as knobs,
        MidiDump("cc-knobs-dump") as sent,  # what left the knobs, should a CC seem lost
    ):
        inp = wait_for_port("perf-cc-in:perf-cc-in", "input", timeout=10)
        connect(knobs.name, inp)
        connect(knobs.name, sent.port)
        connect(perf.port, rec.port)
        assert wait_for_output(perf, "pattern 1 at z = (-2.00, -2.00)"), perf.output()
        restart_and_check_first_bar(perf, rec, pa, loop_steps)
        knobs.send(mido.Message("control_change", channel=0, control=7, value=0))  # not ours: ignored
        knobs.send(mido.Message("control_change", channel=0, control=20, value=127))
        knobs.send(mido.Message("control_change", channel=15, control=21, value=127))  # any channel
        # the console prints a pattern when it takes over (at the next bar at the latest)
        assert wait_for_output(perf, shown(CKPT_44, b)), diagnose(perf, jack_server, sent)
        restart_and_check_first_bar(perf, rec, pb, loop_steps)
        knobs.send(mido.Message("control_change", channel=0, control=31, value=0))
        knobs.send(mido.Message("control_change", channel=0, control=32, value=127))
        # both controls reached the decoder and their pattern took over (not the one of CC 31 alone)
        assert wait_for_output(perf, shown(CKPT_44, b, (0.0, -1.0, 1.0))), diagnose(perf, jack_server, sent)
        restart_and_check_first_bar(perf, rec, pd, loop_steps)
        perf.close()  # a clean exit


def test_without_a_display_it_says_so_and_goes_on_headless(jack_server):
    env = dict(os.environ, SDL_VIDEODRIVER="offscreen", PYTHONUNBUFFERED="1")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "rvae",
            "perform",
            "--midi-api",
            "jack",
            "--midi-out",
            "perf-nodisp",
            "--osc-port",
            "0",
            "--seconds",
            "1.5",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "no window:" in res.stderr and "headless" in res.stderr
    assert "pattern 1" in res.stdout + res.stderr


def test_record_writes_what_was_played_and_the_cursor_path(jack_server, tmp_path):
    out = tmp_path / "set.mid"
    with Performer("perf-rec", CKPT_44, "--bpm", "150", "--record", str(out)) as perf:
        time.sleep(1.0)
        perf.send("/rvae/xy", 1.0, -1.0)
        perf.send("/rvae/density", 2, -0.5)
        time.sleep(1.0)
        perf.close()
    mid = mido.MidiFile(out)
    msgs = [m for m in mid.tracks[0] if not m.is_meta]
    metas = {m.type: m for m in mid.tracks[0] if m.is_meta}
    assert metas["set_tempo"].tempo == mido.bpm2tempo(150)
    assert (metas["time_signature"].numerator, metas["time_signature"].denominator) == (4, 4)
    ons = [m for m in msgs if m.type == "note_on" and m.velocity > 0]
    offs = [m for m in msgs if m.type == "note_off"]
    assert ons and len(offs) >= len(ons)  # every note ended, plus those of the final silence
    assert not [m for m in msgs if m.type == "clock"]
    rows = (tmp_path / "set.cursor.csv").read_text().splitlines()
    density = ",".join(f"density{i}" for i in range(1, 10))  # the bundled 4/4 kit's nine
    assert rows[0] == f"seconds,beat,z0,z1,{density}"
    assert rows[1].endswith("0.0000,0.0000," + ",".join(["0.0000"] * 9))
    assert rows[-1].endswith("1.0000,-1.0000,0.0000,-0.5000," + ",".join(["0.0000"] * 7))


def test_headless_says_when_the_clock_stops_is_lost_and_returns(jack_server):
    """Following jack_midi_clock: the console says playing, the rig's Stop, and a clock whose
    pulses stop without one (its cable pulled: the JACK connection removed) and return. The
    harness runs ``rvae -v``: the bar lines too, with ``late N`` explained once."""
    with (
        Transport() as transport,
        MidiClock(bpm=150) as clock,
        Performer("perf-lost", CKPT_44, "--clock", "midi", "--midi-in", "perf-lost-in") as perf,
    ):
        inp = wait_for_port("perf-lost-in:perf-lost-in", "input", timeout=10)
        src, dst = connect(clock.port, inp)
        assert wait_for_output(perf, "waiting for clock"), perf.output()
        transport.play()
        assert wait_for_output(perf, "playing from bar 1"), perf.output()
        transport.stop()
        assert wait_for_output(perf, "(the clock's Stop); waiting for clock"), perf.output()
        transport.play()  # Continue: it plays on for a bar (and its tempo settles)
        assert wait_for(lambda: len(bar_lines(perf.output(), after="(the clock's Stop)")) >= 2), perf.output()
        subprocess.run(["jack_disconnect", src, dst], check=True, timeout=20)
        assert wait_for_output(perf, "clock lost at bar"), perf.output()
        connect(clock.port, inp)
        assert wait_for_output(perf, "clock back: playing on from bar"), perf.output()
        # the next bar line: the tempo followed, not lost with the pulses nor misread on their return
        assert wait_for(lambda: bar_lines(perf.output(), after="clock back")), perf.output()
        transport.stop()
        out = perf.close()
    assert out.count("late N: notes that left over 1 ms after their time") == 1
    assert 140.0 <= bar_lines(out, after="clock back")[0] < 160.0, out


def bar_lines(out: str, after: str) -> list[float]:
    """The tempo of each bar line (``rvae -v``: "3:1  playing  150.0 BPM  late 0") printed
    while playing after the last ``after``."""
    rest = out[out.rindex(after) :] if after in out else ""
    return [float(m) for m in re.findall(r"^\d+:1  playing  (\d+\.\d) BPM  late \d+$", rest, re.M)]
