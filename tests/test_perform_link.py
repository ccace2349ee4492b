"""``rvae perform --clock link`` as a user runs it: the performer in its own process on real
JACK ports (dummy driver), a real Link peer in another (performer/link_peer.py) holding the
session, and what arrives captured by real JACK inputs: TimedCapture stamps each event with
its JACK cycle's start on perf_counter's clock, the clock the peer answers on, so note-ons
are checked against the peer's own timeline; jack_midi_dump (C, misses nothing) checks that
every note ends.

With ``--microtiming 0`` every hit is on a grid step, so each note-on must fall on a step of
the peer's bar (24 per quarter) and be the pattern's note for that step. Millisecond figures
are scripts/bench_performer.py's; the tolerance here (2 JACK periods) only tells on-grid
from off by a step (18.8 ms at 133 BPM).
"""

from __future__ import annotations

import re
import sys
import time

import mido
import pytest
from conftest import REPO
from test_perform_jack import Heard, expected, pairs_ok, wait_for_output
from test_sequencer import FOUR, feed_pulses, make_player, midi_in, run_for

from performer.clock import PPQN, STOPPED, InternalClock, MidiClockFollower
from performer.clock import Transport as Rolls
from performer.control import Controls, ControlState
from performer.link_peer import LinkPeer, session_lock
from performer.testing import MidiClock, Performer, TimedCapture, Transport, connect, wait_for_port
from rvae.cli import main

CKPT_44 = REPO / "checkpoints" / "groove-4-4.pt"
CKPT_78 = REPO / "checkpoints" / "demo-7-8.pt"
TOL = 0.0054  # seconds: 2 JACK periods (-p 128 at 48 kHz), for the median error
STEP_TOL = 0.4  # of a step, for each event: tells its step from the next (ms are the benchmark's)
Z = (0.3, -0.4)


@pytest.fixture
def session():
    """One Link session at a time on this machine (every peer here is in it)."""
    with session_lock():
        yield


def note_ons(captured: dict, after: float, before: float = float("inf")) -> list[tuple[float, int]]:
    """(time, note) of the captured note-ons in [after, before)."""
    return [
        (t, b[1])
        for t, _, b in captured["events"]
        if len(b) == 3 and b[0] & 0xF0 == 0x90 and b[2] and after <= t < before
    ]


def played_after_start(rec: Heard, n: int) -> bool:
    """A note-on after the ``n``-th Start."""
    msgs = rec.messages("start", "note_on")
    starts = [i for i, m in enumerate(msgs) if m.type == "start"]
    return len(starts) >= n and any(m.type == "note_on" and m.velocity for m in msgs[starts[n - 1] :])


def pulses(captured: dict, after: float, before: float = float("inf")) -> list[float]:
    return [t for t, _, b in captured["events"] if b == [0xF8] and after <= t < before]


def off_grid(ons, bar: float, bpm: float, pattern: dict[int, list[int]], loop_steps: int) -> list[str]:
    """What is wrong with note-ons against a grid of 24 steps a quarter from the bar line
    ``bar`` (seconds): off its step by more than STEP_TOL, or not the pattern's note there;
    and the median error over TOL (a shifted grid, not a busy machine)."""
    tick = 60.0 / bpm / 24
    wrong, errors = [], []
    for t, note in ons:
        k = round((t - bar) / tick)
        errors.append(abs(t - bar - k * tick))
        if errors[-1] > STEP_TOL * tick or note not in pattern.get(k % loop_steps, []):
            wrong.append(f"note {note} at step {(t - bar) / tick:.2f} (pattern there: {pattern.get(k % loop_steps)})")
    if errors and sorted(errors)[len(errors) // 2] > TOL:
        wrong.append(f"median error {sorted(errors)[len(errors) // 2] * 1000:.1f} ms")
    return wrong


@pytest.mark.slow
def test_joins_a_133_session_on_the_peers_grid_follows_it_and_stops_with_it(jack_server, session):
    pattern, loop_steps = expected(CKPT_44, Z)
    assert loop_steps == 96  # one 4/4 bar: quantum 4
    with (
        LinkPeer(bpm=133, quantum=4, playing=True) as peer,
        TimedCapture("cap-link") as cap,
        Heard("heard-link") as rec,
        Performer("perf-link", CKPT_44, "--clock", "link", "--z", *map(str, Z)) as perf,
    ):
        connect(perf.port, cap.port)
        connect(perf.port, rec.port)
        # among peers sharing start and stop, rvae waits for a start rather than start everyone
        assert wait_for_output(perf, "Link: 1 peer at 133.0 BPM, quantum 4: waiting for a peer's start")
        assert wait_for_output(perf, "waiting for Link start (space starts everyone)")
        time.sleep(0.3)
        assert not rec.messages("note_on", "clock", "start")
        started = time.perf_counter()
        peer.ask("play")  # the peer's start: rvae plays from the bar it falls on
        bars = peer.ask("bars", started, 1)["times"]
        time.sleep(8 * 60 / 133)  # two bars
        changed = time.perf_counter()
        peer.ask("tempo", 150)
        bars150 = peer.ask("bars", changed, 1)["times"]  # the bar lines keep their place through the change
        time.sleep(2.0)
        perf.send("/rvae/tempo", 101.0)  # a tempo key or OSC: the session's tempo, for every peer
        assert peer.wait_for("tempo", 101.0)["tempo"] == pytest.approx(101)
        time.sleep(0.3)
        stopped = time.perf_counter()
        peer.ask("stop")  # the peer's Stop: silence
        time.sleep(1.0)
        restarted = time.perf_counter()
        perf.send("/rvae/start")  # the space bar's start: everyone plays again
        assert peer.wait_for("playing", True)["playing"]
        # Start goes out at once, bar 1 at the session's next bar line (2.4 s away at most at 101 BPM)
        assert rec.wait_for(lambda r: played_after_start(r, 2), timeout=8)
        perf.send("/rvae/stop")  # and its stop reaches the peer
        assert not peer.wait_for("playing", False)["playing"]
        time.sleep(0.3)
        out = perf.close()
        rec.settle()
        log = rec.log
    captured = cap.close()
    assert captured["missed_cycles"] == 0, "the capture missed JACK cycles (a loaded machine): rerun alone"
    # bar 1 on the session's bar line the peer's start fell on, every hit on a step of its grid
    first = note_ons(captured, started, changed)
    assert len(first) >= 8
    assert off_grid(first, bars[0], 133, pattern, loop_steps) == []
    # the bridge: MIDI clock on the session's pulses, Start at bar 1
    ticks = pulses(captured, started, changed)
    tick = 60 / 133 / 24
    assert ticks[0] == pytest.approx(bars[0], abs=STEP_TOL * tick)
    off = sorted(abs((t - bars[0]) / tick - round((t - bars[0]) / tick)) for t in ticks)
    assert off[-1] < STEP_TOL and off[len(off) // 2] * tick < TOL
    assert [m.type for _, m in log if m.type in ("start", "clock")][:2] == ["start", "clock"]
    # the peer's tempo followed within one beat: from a beat after the change on, the 150 grid
    later = note_ons(captured, changed + 60 / 133, changed + 2.0)
    assert len(later) >= 4
    assert off_grid(later, bars150[0], 150, pattern, loop_steps) == []
    # the peer's stop: nothing more until our start; everything that sounded ended
    # (the Stop crosses Link's network thread first: 0.25 s of slack for a loaded machine)
    assert note_ons(captured, stopped + 0.25, restarted) == []
    assert note_ons(captured, restarted)  # /rvae/start played again
    pairs_ok(log)
    assert [m.type for _, m in log].count("stop") == 2  # the bridge passed on both stops
    assert "Link: 1 peer" in out


@pytest.mark.slow
def test_seven_eight_on_quantum_three_and_a_half(jack_server, session):
    pattern, loop_steps = expected(CKPT_78, Z)
    assert loop_steps % 84 == 0  # whole 7/8 bars: 3.5 quarters each
    with LinkPeer(bpm=133, quantum=3.5, playing=True) as peer, TimedCapture("cap-link78") as cap:
        launched = time.perf_counter()
        bars = peer.ask("bars", launched, 20)["times"]
        with Performer("perf-link78", CKPT_78, "--clock", "link", "--no-link-start-stop", "--z", *map(str, Z)) as perf:
            connect(perf.port, cap.port)
            # without start/stop sync rvae joins at once, on the session's next bar line
            assert wait_for_output(perf, "quantum 3.5: playing from the session's next bar")
            time.sleep(4 * 3.5 * 60 / 133)
            out = perf.close()
    captured = cap.close()
    assert captured["missed_cycles"] == 0, "the capture missed JACK cycles (a loaded machine): rerun alone"
    t0 = float(re.findall(r"link clock: beat 0 at perf_counter ([0-9.]+) s", out)[-1])
    bar = min(bars, key=lambda b: abs(b - t0))
    assert abs(bar - t0) < 0.001  # rvae's bar 1 is a bar line of the session
    ons = note_ons(captured, launched)
    assert len(ons) >= 8
    assert off_grid(ons, bar, 133, pattern, loop_steps) == []


@pytest.mark.slow
def test_alone_it_plays_at_once_at_its_own_tempo(jack_server, session):
    with Heard("heard-alone") as rec, Performer("perf-alone", CKPT_44, "--clock", "link", "--bpm", "100") as perf:
        connect(perf.port, rec.port)
        assert wait_for_output(perf, "Link: 0 peers at 100.0 BPM, quantum 4: playing alone")
        assert rec.wait_for(lambda r: len(r.messages("clock")) > 48, timeout=10)
        frames = [f for f, m in rec.log if m.type == "clock"]
        period = (frames[-1] - frames[0]) / (len(frames) - 1) / 48000
        assert period == pytest.approx(60 / 100 / 24, rel=0.02)
        assert wait_for_output(perf, "Link: 0 peers, 100.0 BPM, beat")  # the status line
        perf.close()


@pytest.mark.slow
def test_the_bridge_forwards_a_followed_midi_clock_with_song_position(jack_server):
    """``--clock midi --send-clock``: jack_midi_clock's pulses go out as they arrive, and a
    start from bar 2 goes out as Song Position + Continue."""
    with (
        Heard("heard-bridge") as rec,
        Heard("heard-source") as source,
        Transport() as transport,
        MidiClock(bpm=120, force_bpm=False, resync_delay=0.2) as clock,
        Performer("perf-bridge", CKPT_44, "--clock", "midi", "--send-clock", "--midi-in", "perf-bridge-in") as perf,
    ):
        transport.master(120)
        inp = wait_for_port("perf-bridge-in:perf-bridge-in", "input", timeout=10)
        connect(clock.port, inp)
        connect(clock.port, source.port)
        connect(perf.port, rec.port)
        time.sleep(0.3)
        transport.play()
        assert rec.wait_for(lambda r: len(r.messages("clock")) > 96, timeout=10)
        transport.stop()
        assert rec.wait_for(lambda r: r.messages("stop"), timeout=5)
        rec.settle()
        first = rec.log
        rec.clear()
        transport.locate(4 * 24000)  # bar 2 at 120 BPM (48 kHz: a beat is 24000 frames)
        time.sleep(0.3)
        transport.play()  # jack_midi_clock: Song Position, then Continue
        assert rec.wait_for(lambda r: len(r.messages("clock")) > 48, timeout=10)
        transport.stop()
        perf.close()
        rec.settle()
        second = rec.log
        told = source.messages("songpos", "continue")
        # the position it continued from
        sent = [told[i - 1] for i, m in enumerate(told) if m.type == "continue" and i][:1]
    kinds = [m.type for _, m in first if m.type in ("start", "continue", "songpos", "clock", "stop")]
    assert kinds[0] == "start" and kinds.count("clock") > 96 and "stop" in kinds
    frames = [f for f, m in first if m.type == "clock"]
    period = (frames[-1] - frames[0]) / (len(frames) - 1) / 48000
    assert period == pytest.approx(60 / 120 / 24, rel=0.02)
    moved = [m for _, m in second if m.type in ("songpos", "continue", "start", "clock")]
    # where jack_midi_clock pointed (bar 2, plus its resync delay rounded up to a 16th)
    assert [m.type for m in moved[:2]] == ["songpos", "continue"] and [moved[0]] == sent
    assert moved[0].pos >= 16
    pairs_ok(first + second)


@pytest.mark.parametrize(
    ("argv", "sentence"),
    [
        (["--quantum", "0"], "--quantum 0: the bar's length in quarter notes must be above 0"),
        (["--latency", "600"], "--latency 600: choose milliseconds between -500 and 500"),
    ],
)
def test_bad_link_options_are_one_sentence(capsys, argv, sentence):
    assert main(["perform", "--headless", "--clock", "link", "--seconds", "1", "--osc-port", "0", *argv]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == f"rvae perform: {sentence}"


def test_without_the_extra_it_says_how_to_install(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "link", None)  # import link -> ImportError, as without rvae[link]
    assert main(["perform", "--headless", "--clock", "link", "--seconds", "1", "--osc-port", "0"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "rvae perform: --clock link needs Ableton Link, an optional extra: pip install 'rvae[link]'"


# --- the same rules on the Player, on a fake time source (tests/test_sequencer.py's) -------------


def test_a_follower_bridge_forwards_each_pulse_and_a_continue_mid_song():
    follower = MidiClockFollower()
    follower.sends_clock = True  # --clock midi --send-clock
    player, rec, fake = make_player(FOUR, follower)
    period = 0.5 / PPQN
    feed_pulses(player, fake, 30, period)  # Start, then 30 pulses
    sent = [(t, m.type) for t, m in rec.got if m.type in ("start", "clock", "stop")]
    assert [k for _, k in sent] == ["start"] + ["clock"] * 30
    first = sent[1][0]
    assert max(abs(t - first - k * period) for k, (t, _) in enumerate(sent[1:])) < 1e-3  # each as it arrives
    midi_in(player, mido.Message("stop"), fake.t)
    run_for(player, fake, 0.01)
    rec.got.clear()
    midi_in(player, mido.Message("songpos", pos=8), fake.t)  # beat 2
    feed_pulses(player, fake, 3, period, start_kind="continue")
    assert [m for _, m in rec.got if m.type in ("songpos", "continue", "start", "clock")] == [
        mido.Message("songpos", pos=8),
        mido.Message("continue"),
        *[mido.Message("clock")] * 3,
    ]


class SharedClock(InternalClock):
    """An internal clock that others move too, as a Link session's peers do; like LinkClock
    it takes the controls' changes only, and not a tempo that echoes its own."""

    shared = True

    def __init__(self, bpm: float) -> None:
        super().__init__(bpm)
        self.asked = (False, bpm)

    def request(self, running: bool, bpm: float, now: float) -> None:
        if bpm != self.bpm and bpm != self.asked[1]:
            self.set_bpm(bpm, now)
        if running != self.asked[0]:
            super().request(running, self.bpm, now)
        self.asked = (running, bpm)


def test_the_controls_follow_a_shared_clocks_tempo_and_transport():
    clock = SharedClock(120.0)
    controls = Controls(ControlState(bpm=120.0))
    player, rec, fake = make_player(FOUR, clock, controls)
    run_for(player, fake, 0.1)
    clock.set_bpm(133.0, fake.t)  # a peer's tempo
    run_for(player, fake, 0.02)
    assert controls.get().bpm == 133.0 and clock.bpm == 133.0  # followed, not set back
    controls.update(bpm=134.0)  # the tempo key steps from the session's tempo
    run_for(player, fake, 0.02)
    assert clock.bpm == 134.0
    clock._change, clock.running = STOPPED, False  # a peer's Stop
    run_for(player, fake, 0.02)
    assert controls.get().running is False and player.view.state == "stopped"
    assert [m.type for _, m in rec.got][-2:] == ["stop", "control_change"]  # Stop out, then silence
    controls.update(running=True)  # one press of space starts again (not two)
    run_for(player, fake, 0.05)
    assert player.view.state == "playing" and clock.running


def test_the_window_shows_what_the_link_clock_says(monkeypatch, tmp_path):
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    from performer import ui
    from performer.sequencer import PlayerView
    from rvae.checkpoint import load_checkpoint

    drawn: list[str] = []
    text = ui.Renderer.text

    def recording(self, s, *args, **kw):
        drawn.append(s)
        return text(self, s, *args, **kw)

    monkeypatch.setattr(ui.Renderer, "text", recording)
    status = "Link: 2 peers, 133.0 BPM, beat 3 of 4"
    view = PlayerView(bpm=133.0, clock="link", state="waiting for Link start (space starts everyone)", detail=status)
    ui.screenshot(load_checkpoint(CKPT_44), ControlState(), view, tmp_path / "link.png")
    assert status in drawn and "link clock, waiting for Link start (space starts everyone)" in drawn


def test_a_start_heard_before_its_first_pulse_is_not_a_lost_clock():
    # under load a turn can take the Start before the first pulse is queued (seen in a full run)
    clock = MidiClockFollower()
    clock.hear(mido.Message("start"), 50.0)
    assert clock.poll(50.001) == Rolls(True, 0.0)
    assert clock.poll(50.01) is None and clock.idle != "clock lost"
    clock.hear(mido.Message("clock"), 50.015)
    assert clock.poll(50.016) is None
    assert clock.poll(52.0) == STOPPED and clock.idle == "clock lost"  # pulses really stopped: lost
