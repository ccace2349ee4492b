"""Learning on stage end to end, as a user runs it: ``rvae perform --headless --learn-in`` in
its own process on real JACK ports, a drummer process (performer.testing.GrooveSender)
following its MIDI clock and playing a groove the model was not trained on, jack_midi_dump
listening to the performer's output. Real training in the performer's learner process."""

from __future__ import annotations

import os
import re
import signal
import time

import numpy as np
import pytest
from conftest import REPO

from performer.testing import (
    UNSEEN_GROOVE,
    GrooveSender,
    MidiClock,
    MidiDump,
    Performer,
    Transport,
    connect,
    jack_ports,
    wait_for_port,
)
from rvae.checkpoint import load_checkpoint
from rvae.generate import to_groove
from rvae.groove import Groove
from rvae.latent import decode_probs, encode
from rvae.metrics import onset_scores
from rvae.midi_io import read_midi

pytestmark = pytest.mark.slow
CKPT = REPO / "checkpoints" / "groove-4-4.pt"
BPM = 120.0
PULSE_FRAMES = 48000 * 60 / (BPM * 24)  # one clock pulse, in frames of the dummy server
PERIOD = 128
# "The clock never stopped": a stalled or missed pulse shows as a gap of a whole pulse interval
# or more, so a gap up to half an interval more passes (milliseconds are the benchmark's). On
# the quiet 2-core CI machine pulses left late while learning: 152 frames (3.2 ms) as the
# learner was killed, 280 frames (5.8 ms) while a new model came in; see the closing note.
STEADY = PULSE_FRAMES / 2

GROOVE = UNSEEN_GROOVE


def sent_groove(ckpt) -> Groove:
    lookup = ckpt.kit.lookup()
    a = np.zeros((3, len(ckpt.kit), ckpt.grid.steps), np.float32)
    for pulse, note, velocity in GROOVE:
        a[:, lookup[note], pulse] = 1.0, velocity / 127, 0.0
    return Groove(a[0], a[1], a[2], ckpt.grid, ckpt.kit)


def wait_for(predicate, timeout: float, what: str, output=lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}:\n{output()[-3000:]}")
        time.sleep(0.1)


def pulse_frames(dump: MidiDump) -> np.ndarray:
    events = dump.events()
    starts = [i for i, (_, b) in enumerate(events) if b[0] == 0xFA]
    return np.array([f for f, b in events[starts[-1] if starts else 0 :] if b == [0xF8]], float)


def start_playing(perf: Performer, drummer: GrooveSender, dump: MidiDump, learn_in: str) -> None:
    played = wait_for_port(f"{learn_in}:{learn_in}", "input", timeout=10)
    connect(perf.port, drummer.clock_in)
    connect(drummer.out, played)
    connect(perf.port, dump.port)
    time.sleep(0.3)
    perf.send("/rvae/stop")  # from Start: the drummer counts its pulses from it
    time.sleep(0.2)
    perf.send("/rvae/start")


def check_bars(session, ckpt, n: int, out: str) -> None:
    """The captured bars on disk are what was sent: every note on its step, velocity within 1."""
    bars = sorted(session.glob("bar-*.mid"))
    assert [b.name for b in bars] == [f"bar-{k:04d}.mid" for k in range(1, n + 1)], out
    want = sorted(sent_groove(ckpt).hits())
    for path in bars:
        (loop,) = read_midi(path, ckpt.grid, ckpt.kit).loops
        got = sorted(loop.hits())
        assert [(s, i) for s, i, _, _ in got] == [(s, i) for s, i, _, _ in want], path
        assert all(abs(g[2] - w[2]) <= 1 for g, w in zip(got, want, strict=True)), path
        assert all(0 <= g[3] < 1 for g in got), "played on the pulse heard: late, within the step"


def test_a_groove_played_in_is_learnt_while_the_clock_runs(jack_server, tmp_path):
    session = tmp_path / "session"
    ckpt = load_checkpoint(CKPT)
    groove = sent_groove(ckpt)
    z0 = encode(ckpt, [groove])[0]
    before = onset_scores(to_groove(ckpt, decode_probs(ckpt, z0)[0]).onsets, groove.onsets)[2]
    with MidiDump("learn-dump", absolute=True) as dump, GrooveSender("drummer", GROOVE, 96, 4) as drummer:
        with Performer(
            "perf-learn", CKPT, "--bpm", f"{BPM:g}", "--learn-in", "perf-played", "--learn-save", str(session)
        ) as perf:
            start_playing(perf, drummer, dump, "perf-played")
            wait_for(lambda: len(list(session.glob("bar-*.mid"))) >= 4, 30, "four captured bars", perf.output)
            perf.send("/rvae/learn")
            wait_for(lambda: "plays from bar" in perf.output(), 90, "the learned model", perf.output)
            time.sleep(2.5)  # past the bar line it takes over at, and a bar of it
            out = perf.close()
        frames = pulse_frames(dump)

    check_bars(session, ckpt, 4, out)

    # the new model in the session folder holds the groove at its own z
    new = load_checkpoint(session / "model-01.pt")
    assert new.n_kept_loops == ckpt.n_kept_loops + 4
    z = encode(new, [groove])[0]
    after = onset_scores(to_groove(new, decode_probs(new, z)[0]).onsets, groove.onsets)[2]
    assert after >= 0.9, (before, after)

    # the cursor moved to the first new loop's z: a pattern was decoded there
    first_new = np.asarray(new.latents)[-4, :2]
    shown = [tuple(map(float, m)) for m in re.findall(r"at z = \(([-+.\d]+), ([-+.\d]+)\)", out)]
    assert any(np.allclose(zz, first_new, atol=0.006) for zz in shown), (first_new, shown[-3:])
    assert re.search(r"learning 4 bars \(1-4\)", out), out

    # the clock never stopped: no gap of a pulse interval and a half (see STEADY)
    assert len(frames) > 24 * 4 * 5
    assert np.diff(frames).max() <= PULSE_FRAMES + STEADY, np.diff(frames).max()


def test_a_killed_learner_leaves_the_old_model_playing_and_the_bars_kept(jack_server, tmp_path):
    session = tmp_path / "session"
    with MidiDump("kill-dump", absolute=True) as dump, GrooveSender("drummer2", GROOVE, 96, 2) as drummer:
        with Performer(
            "perf-kill", CKPT, "--bpm", f"{BPM:g}", "--learn-in", "perf-played2", "--learn-save", str(session)
        ) as perf:
            start_playing(perf, drummer, dump, "perf-played2")
            wait_for(lambda: len(list(session.glob("bar-*.mid"))) >= 2, 30, "two captured bars", perf.output)
            wait_for(lambda: "learner process pid" in perf.output(), 10, "the learner", perf.output)
            pid = int(re.findall(r"learner process pid (\d+)", perf.output())[-1])
            perf.send("/rvae/learn")
            wait_for(lambda: "learning 2 bars" in perf.output(), 10, "the learn to start", perf.output)
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: "learning failed" in perf.output(), 10, "the failure said", perf.output)
            n0 = len(pulse_frames(dump))
            time.sleep(1.5)
            n1 = len(pulse_frames(dump))
            out = perf.close()
        frames = pulse_frames(dump)
    assert "the training process was killed by signal 9; the old model plays on" in out, out
    assert "plays from bar" not in out
    assert not list(session.glob("model-*.pt"))
    assert [p.name for p in sorted(session.glob("bar-*.mid"))][:2] == ["bar-0001.mid", "bar-0002.mid"]
    assert n1 - n0 >= 24 * 2, "the clock plays on after the learner died"
    assert np.diff(frames).max() <= PULSE_FRAMES + STEADY, np.diff(frames).max()
    assert re.findall(r"learner process pid (\d+)", out)[-1] != str(pid), "a fresh learner started"


def test_learn_in_naming_nothing_makes_a_port_and_learning_nothing_says_so(jack_server, tmp_path):
    with Performer("perf-bad", CKPT, "--learn-in", "no-such-pads", "--learn-save", str(tmp_path / "s")) as perf:
        wait_for_port("no-such-pads:no-such-pads", "input", timeout=10)
        wait_for(lambda: "learner process pid" in perf.output(), 10, "the learner", perf.output)
        perf.send("/rvae/learn")
        wait_for(lambda: "nothing to learn yet" in perf.output(), 10, "the sentence", perf.output)
        out = perf.close()
    assert "no MIDI source's name contains 'no-such-pads': made the input no-such-pads" in out
    assert "nothing to learn yet: play a bar or more into no-such-pads while the clock runs, then learn" in out


def test_learn_in_may_be_the_port_of_midi_in(jack_server, tmp_path):
    session = tmp_path / "session"
    ckpt = load_checkpoint(CKPT)
    want = sorted((s, i) for s, i, _, _ in sent_groove(ckpt).hits())
    with MidiDump("shared-dump", absolute=True) as dump, GrooveSender("drummer3", GROOVE, 96, 2) as drummer:
        with Performer(
            "perf-shared", CKPT, "--midi-in", "perf-both", "--learn-in", "perf-both", "--learn-save", str(session)
        ) as perf:
            start_playing(perf, drummer, dump, "perf-both")
            wait_for(lambda: len(list(session.glob("bar-*.mid"))) >= 2, 30, "two captured bars", perf.output)
            assert [p for p in jack_ports() if "perf-both" in p] == ["perf-both:perf-both"], "one port for both"
            perf.close()
    for path in sorted(session.glob("bar-*.mid"))[:2]:
        (loop,) = read_midi(path, ckpt.grid, ckpt.kit).loops
        assert sorted((s, i) for s, i, _, _ in loop.hits()) == want, path


def test_capture_follows_jack_midi_clock(jack_server, tmp_path):
    """rvae follows jack_midi_clock (--clock midi); the drummer follows the same clock and
    plays into --learn-in: the bars land on the follower's grid, counted from Start."""
    session = tmp_path / "session"
    ckpt = load_checkpoint(CKPT)
    with (
        Transport() as transport,
        MidiClock(bpm=BPM) as clock,
        GrooveSender("drummer4", GROOVE, 96, 3) as drummer,
        Performer(
            "perf-mc",
            CKPT,
            "--clock",
            "midi",
            "--midi-in",
            "perf-mc-in",
            "--learn-in",
            "perf-mc-played",
            "--learn-save",
            str(session),
        ) as perf,
    ):
        connect(clock.port, wait_for_port("perf-mc-in:perf-mc-in", "input", timeout=10))
        connect(clock.port, drummer.clock_in)
        connect(drummer.out, wait_for_port("perf-mc-played:perf-mc-played", "input", timeout=10))
        wait_for(lambda: "learner process pid" in perf.output(), 30, "the learner", perf.output)
        time.sleep(0.3)
        transport.play()  # jack_midi_clock sends Start from frame 0: the performer and the drummer count from it
        wait_for(lambda: len(list(session.glob("bar-*.mid"))) >= 3, 30, "three captured bars", perf.output)
        time.sleep(2 * 60 / BPM)  # a fourth bar's worth: nothing more is played, nothing more is written
        transport.stop()
        out = perf.close()
    check_bars(session, ckpt, 3, out)


def test_capture_follows_a_link_session(jack_server, tmp_path):
    """rvae on a Link session (--clock link) sends MIDI clock out; the drummer follows it and
    plays into --learn-in: the bars land on the session's grid, counted from rvae's Start."""
    pytest.importorskip("link", reason="the Link extra (LinkPython-extern) is not installed")
    from performer.link_peer import LinkPeer, session_lock

    session = tmp_path / "session"
    ckpt = load_checkpoint(CKPT)
    with (
        session_lock(),
        LinkPeer(bpm=BPM, quantum=4, playing=False) as peer,
        GrooveSender("drummer5", GROOVE, 96, 3) as drummer,
        Performer(
            "perf-lk",
            CKPT,
            "--clock",
            "link",
            "--learn-in",
            "perf-lk-played",
            "--learn-save",
            str(session),
        ) as perf,
    ):
        connect(perf.port, drummer.clock_in)
        connect(drummer.out, wait_for_port("perf-lk-played:perf-lk-played", "input", timeout=10))
        wait_for(lambda: "learner process pid" in perf.output(), 30, "the learner", perf.output)
        wait_for(lambda: "waiting for Link start" in perf.output(), 10, "the Link session", perf.output)
        peer.ask("play")  # the session starts: rvae sends Start at the bar line, the drummer counts from it
        wait_for(lambda: len(list(session.glob("bar-*.mid"))) >= 3, 30, "three captured bars", perf.output)
        time.sleep(2 * 60 / BPM)
        peer.ask("stop")
        out = perf.close()
    check_bars(session, ckpt, 3, out)
