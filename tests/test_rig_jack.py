"""The rig changing under a show, on real JACK: gear connected while rvae plays on its own
clock gets Song Position Pointer + Continue at the next bar; the JACK server killed and
started again while rvae plays: it says so, reopens its port, reconnects, and plays on.

Heard (jack_midi_dump) listens; ``rvae perform`` runs as a user runs it (performer.testing)."""

from __future__ import annotations

import subprocess
import sys
import time

import mido
import pytest
from test_perform_jack import CKPT_44, Heard, check_against_pattern, expected, pairs_ok, wait_for_output

from performer import rig, testing
from performer.testing import MidiClock, Performer, Transport, connect, connections, restart_jack, wait_for_port

slow = pytest.mark.slow


def after_resync(log: list[tuple[int, mido.Message]]) -> tuple[int, list[tuple[int, int]]]:
    """The first Song Position Pointer followed by Continue: (its position in 16ths,
    [(pulse index after the Continue, note)] of the note-ons after it); pulse 0 is the first."""
    types = [m.type for _, m in log]
    for i, m in enumerate(types[:-1]):
        if m == "songpos" and types[i + 1] == "continue":
            pulses, notes = -1, []
            for _, msg in log[i + 2 :]:
                if msg.type == "clock":
                    pulses += 1
                elif msg.type == "note_on" and msg.velocity > 0 and pulses >= 0:
                    notes.append((pulses, msg.note))
            return log[i][1].pos, notes
    return -1, []


def pulses_after_resync(rec) -> int:
    log = rec.log
    pos, _ = after_resync(log)
    if pos < 0:
        return -1
    first = next(i for i, (_, m) in enumerate(log) if m.type == "continue")
    return sum(1 for _, m in log[first:] if m.type == "clock")


@slow
def test_gear_connected_late_gets_song_position_and_continue_at_the_next_bar(jack_server):
    z = (0.3, -0.4)
    pattern, loop_steps = expected(CKPT_44, z)
    assert loop_steps == 96  # one bar of 4/4: a bar line is the loop's first step
    with Performer("perf-late", CKPT_44, "--bpm", "150", "--z", *map(str, z)) as perf:
        time.sleep(1.5)  # playing on its own clock, nobody listening
        with Heard("heard-late") as rec:
            connect(perf.port, rec.port)
            assert rec.wait_for(lambda r: pulses_after_resync(r) >= loop_steps + 10, timeout=15), rec.messages()[:20]
            perf.close()
            rec.settle()
            log = rec.log
    pos, played = after_resync(log)
    assert pos > 0 and pos % 16 == 0  # a bar line (16 sixteenths in 4/4), not the start: it played on
    assert [m.type for _, m in log].index("songpos") > 0  # what came before it was mid-bar clock
    check_against_pattern(played, pattern, loop_steps, bars=1)
    pairs_ok(log[[m.type for _, m in log].index("songpos") :])


@slow
def test_jack_server_restarted_reopens_reconnects_and_plays_on(jack_server):
    z = (0.3, -0.4)
    pattern, loop_steps = expected(CKPT_44, z)
    with Performer("perf-rs", CKPT_44, "--bpm", "150", "--z", *map(str, z)) as perf:
        with Heard("heard-rs") as rec:
            connect(perf.port, rec.port)
            # its Song Position says the performer saw the connection (it remembers it)
            assert rec.wait_for(lambda r: r.messages("songpos") and r.messages("note_on"), timeout=10)
            back = restart_jack(jack_server)  # the dump ends with its server
        assert wait_for_output(perf, "JACK server back", timeout=10), perf.output()
        with Heard("heard-rs") as rec:  # the same listener, started again: a remembered peer
            ready = time.perf_counter()
            assert rec.wait_for(lambda r: r.messages("note_on"), timeout=10), perf.output()
            first_note = time.perf_counter()
            assert connections(wait_for_port("perf-rs:perf-rs", "output")) == [rec.port]
            assert rec.wait_for(lambda r: pulses_after_resync(r) >= loop_steps + 10, timeout=15)
            out = perf.close()  # and it still exits cleanly
            rec.settle()
            log = rec.log
    assert out.count("JACK server gone") == 1 and out.count("JACK server back") == 1, out
    pos, played = after_resync(log)
    assert pos > 0 and pos % 16 == 0
    check_against_pattern(played, pattern, loop_steps, bars=1)  # on the clock's grid
    print(
        f"\nrecovery: server back -> listener up {ready - back:.2f} s -> first note {first_note - back:.2f} s; "
        + next(ln for ln in out.splitlines() if "JACK server back" in ln)
    )
    assert first_note - ready < 2.0  # reconnected and playing within 2 s of the peer's return


# pads played into the learning input: a process of its own (its port dies with the server;
# killed, never closed, as the rig keeps dead ports rather than wait on a dead server)
PADS = """
import sys, time, mido
from performer.ports import open_output
out = open_output(sys.argv[1], "jack")
while True:
    out.send(mido.Message("note_on", channel=9, note=36, velocity=100))
    time.sleep(0.05)
    out.send(mido.Message("note_off", channel=9, note=36, velocity=0))
    time.sleep(0.15)
"""


def pads(name: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", PADS, name], stdin=subprocess.DEVNULL)
    wait_for_port(f"{name}:{name}", "output", timeout=15)
    return proc


def bars(folder) -> int:
    return len(list(folder.glob("bar-*.mid")))


@slow
def test_learning_input_is_reopened_and_reconnected_after_a_jack_restart(jack_server, tmp_path):
    session = tmp_path / "session"
    args = ("--bpm", "150", "--learn-in", "rs-played", "--learn-save", str(session))
    drummer = None
    with Performer("perf-lrs", CKPT_44, *args) as perf:
        try:
            played = wait_for_port("rs-played:rs-played", "input", timeout=10)
            drummer = pads("rs-pads")
            connect("rs-pads:rs-pads", played)
            deadline = time.monotonic() + 15
            while bars(session) < 1 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert bars(session) >= 1, perf.output()
            restart_jack(jack_server)
            drummer.kill()
            drummer.wait()
            assert wait_for_output(perf, "JACK server back", timeout=10), perf.output()
            heard = bars(session)
            drummer = pads("rs-pads")  # the same pads, back: the rig reconnects them to the reopened input
            deadline = time.monotonic() + 15
            while bars(session) < heard + 2 and time.monotonic() < deadline:
                time.sleep(0.1)
            assert bars(session) >= heard + 2, perf.output()  # learning hears again: bars are captured
            assert connections(wait_for_port("rs-played:rs-played", "input")) == ["rs-pads:rs-pads"]
        finally:
            if drummer is not None:
                drummer.kill()
                drummer.wait()
        out = perf.close()
    assert "learning input" in next(ln for ln in out.splitlines() if "JACK server back" in ln), out


@slow
def test_midi_clock_input_is_reopened_after_a_restart_and_follows_the_clock_again(jack_server):
    with Performer("perf-mrs", CKPT_44, "--clock", "midi", "--midi-in", "perf-mrs-in") as perf:
        inp = wait_for_port("perf-mrs-in:perf-mrs-in", "input", timeout=10)
        with Transport() as transport, MidiClock(bpm=150) as clock:
            connect(clock.port, inp)
            transport.play()
            assert wait_for_output(perf, "playing from bar 1"), perf.output()
            # the rig remembers the connections it has looked at (every rig.POLL): one made the
            # instant before a crash is not yet known (CI once restarted within that tenth)
            time.sleep(3 * rig.POLL)
            restart_jack(jack_server)  # the clock and the transport end with their server
        assert wait_for_output(perf, "JACK server back"), perf.output()
        with Transport() as transport, MidiClock(bpm=150) as clock, Heard("heard-mrs") as rec:
            deadline = time.monotonic() + 5
            while connections(inp) != [clock.port] and time.monotonic() < deadline:
                time.sleep(0.1)
            assert connections(inp) == [clock.port]  # the remembered clock source, reconnected by name
            connect(perf.port, rec.port)
            transport.play()
            assert rec.wait_for(lambda r: r.messages("note_on"), timeout=10), perf.output()
            transport.stop()
            out = perf.close()
    assert "MIDI in" in next(ln for ln in out.splitlines() if "JACK server back" in ln), out


@slow
def test_named_destination_back_after_a_restart_is_connected_again_not_replaced(jack_server, monkeypatch):
    real_wait = testing.wait_for_port
    with Heard("named-synth") as rec:
        # our end of a connection to existing gear is rvae:out (no virtual port of the performer's name)
        monkeypatch.setattr(
            testing, "wait_for_port", lambda _n, side, timeout=5.0: real_wait("rvae:out", side, timeout)
        )
        with Performer("perf-named-out", CKPT_44, "--bpm", "150", "--midi-out", "named-synth") as perf:
            monkeypatch.undo()
            assert rec.wait_for(lambda r: r.messages("note_on"), timeout=10), perf.output()
            restart_jack(jack_server)  # the synth goes with it
            assert wait_for_output(perf, "waiting for 'named-synth' to come back", timeout=10), perf.output()
            time.sleep(1.0)  # still waiting: no virtual port made meanwhile
            assert not any("perf-named-out" in p or p.startswith("named-synth") for p in testing.jack_ports())
            with Heard("named-synth") as again:
                assert again.wait_for(lambda r: r.messages("note_on"), timeout=5), perf.output()
                out = perf.close()
    assert "MIDI out connected to 'named-synth:input' again" in out, out
    assert out.count("JACK server back") == 1


@slow
def test_midi_out_naming_no_port_says_it_made_one(jack_server):
    said = "no MIDI destination's name contains 'perf-made-up': made the output perf-made-up"
    with Performer("perf-made-up", CKPT_44, "--bpm", "120") as perf:  # no other test's port contains it
        # the port is there a moment before the line is: a SIGTERM at once (a loaded machine)
        # would end the performer before it said anything
        assert wait_for_output(perf, said), perf.output()
        perf.close()


@slow
def test_rvae_ports_without_an_api_falls_back_to_jack_as_perform_does(jack_server, capsys):
    from rvae.cli import main

    with Performer("perf-listed", CKPT_44, "--bpm", "120") as perf:
        assert main(["ports"]) == 0  # no --midi-api: rtmidi's default (no ALSA sequencer here?), else JACK
        perf.close()
    assert "perf-listed:perf-listed" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["perform", "ports"])
def test_midi_api_choices_are_the_apis_compiled_in(command, capsys):
    import rtmidi

    from rvae.cli import main

    compiled = {rtmidi.get_api_name(a) for a in rtmidi.get_compiled_api()} & {"alsa", "jack", "coremidi", "winmm"}
    with pytest.raises(SystemExit):
        main([command, "--help"])
    help_text = capsys.readouterr().out
    assert f"--midi-api {{{','.join(sorted(compiled, key=['alsa', 'jack', 'coremidi', 'winmm'].index))}}}" in help_text
    missing = next(iter({"alsa", "jack", "coremidi", "winmm"} - compiled))
    with pytest.raises(SystemExit):
        main([command, "--midi-api", missing])
    assert "invalid choice" in capsys.readouterr().err


@slow
def test_the_benchmarks_capture_reopens_after_a_restart_and_reports_the_gap(jack_server):
    from performer.rig_capture import RestartCapture

    procs = []
    try:
        with RestartCapture("cap-gap") as cap:
            procs.append(pads("gap-pads"))
            connect("gap-pads:gap-pads", cap.port)
            time.sleep(1.0)
            killed = time.perf_counter()
            back = restart_jack(jack_server)
            procs[-1].kill()
            wait_for_port("cap-gap:in", "input", timeout=5)  # open again, by itself
            procs.append(pads("gap-pads"))
            connect("gap-pads:gap-pads", cap.port)
            time.sleep(1.0)
            result = cap.close()
    finally:
        for p in procs:
            p.kill()
            p.wait()
    first, second = result["sessions"]
    assert killed < first["lost"] < back and second["opened"] - back < 1.0 and second["lost"] is None
    heard = [[e for e in result["events"] if e[3] == k and e[2][0] == 0x99] for k in (0, 1)]
    assert len(heard[0]) >= 5 and len(heard[1]) >= 5  # a note every 0.2 s, in both lives of the server
    assert heard[0][-1][0] < first["lost"] < second["opened"] < heard[1][0][0]
