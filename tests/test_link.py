"""The Link clock against a real Link peer: another process on this machine holds the session.

Times compared are perf_counter seconds on both sides; the peer converts Link's clock on
its own (performer/link_peer.py), so these tests check performer/link.py's conversion too.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import mido
import numpy as np
import pytest

from performer.clock import STOPPED, Transport
from performer.control import Controls, ControlState
from performer.link import START_MARGIN, LinkClock, bar_quantum, check_options
from performer.link_peer import LinkPeer, session_lock
from performer.sequencer import Mailbox, Pattern, Player, Sequencer, make_pattern
from rvae.errors import UserError
from rvae.grid import Grid
from rvae.groove import Groove
from rvae.kit import KITS

KIT = KITS["default"]

MS = 0.001


@pytest.fixture(autouse=True)
def _one_session_at_a_time():
    with session_lock():
        yield


@contextmanager
def joined(peer: LinkPeer, **kw) -> Iterator[LinkClock]:
    """A LinkClock in the peer's session (tempo adopted); its own tempo is never the peer's."""
    with LinkClock(bpm=90.0, **kw) as clock:
        assert clock.wait_for_peers(2.0) >= 1, "the peer was not discovered within 2 s"
        tempo = peer.ask("state", time.perf_counter())["tempo"]
        poll_until(clock, lambda: abs(clock.bpm - tempo) < 0.01, 1.0)
        assert clock.bpm == pytest.approx(tempo, abs=0.01), "the peer did not hold the session"
        yield clock


def poll_until(clock: LinkClock, done, timeout: float) -> tuple[list[Transport], float]:
    """Poll as the clock thread does (every 2 ms) until ``done()``; returns the transport
    changes seen and the time taken."""
    news, t0 = [], time.perf_counter()
    while not done() and time.perf_counter() - t0 < timeout:
        time.sleep(0.002)
        n = clock.poll(time.perf_counter())
        if n:
            news.append(n)
    return news, time.perf_counter() - t0


def bars_agree(clock: LinkClock, peer: LinkPeer, first: float, latency: float = 0.0) -> float:
    """Worst difference (s) between our bar lines from beat ``first`` on and the peer's."""
    q = clock.quantum
    peer_bars = peer.ask("bars", clock.time_of(first) + latency - 0.001, 4)["times"]
    return max(abs(clock.time_of(first + k * q) + latency - t) for k, t in enumerate(peer_bars))


@pytest.mark.slow
def test_joins_on_the_peers_bar_and_agrees_with_its_timeline():
    with LinkPeer(bpm=133, quantum=4, playing=True) as peer, joined(peer, quantum=4) as clock:
        assert clock.bpm == pytest.approx(133, abs=0.01)  # the session's tempo, not ours
        now = time.perf_counter()
        clock.start(now)
        # beat 0 is the session's next bar line
        assert now + START_MARGIN < clock.t0 <= now + START_MARGIN + 4 * 60 / 133 + MS
        phase = peer.ask("state", clock.t0)["phase"]
        assert min(phase, 4 - phase) * 60 / 133 < MS
        assert bars_agree(clock, peer, 0.0) < MS
        assert str(clock.status(clock.time_of(2.5))) == "Link: 1 peer, 133.0 BPM, beat 3 of 4"
        # anywhere in the bar, not only on bar lines
        for dt in (0.05, 0.333, 0.9, 1.7):
            t = now + dt
            st = peer.ask("state", t)
            ours = clock.beat_at(t) % 4
            assert abs(ours - st["phase"]) * 60 / 133 < MS
            assert abs(clock.phase(t) - st["phase"]) * 60 / 133 < MS
        # --latency moves every event earlier by that much
        bar2 = clock.time_of(4.0)
        clock.latency = 0.020
        assert clock.time_of(4.0) == pytest.approx(bar2 - 0.020, abs=1e-6)
        assert clock.beat_at(bar2 - 0.020) == pytest.approx(4.0, abs=1e-5)
        assert bars_agree(clock, peer, 0.0, latency=0.020) < MS


@pytest.mark.slow
def test_joining_while_playing_moves_to_the_sessions_next_bar():
    with LinkPeer(bpm=133, quantum=4, playing=True) as peer, LinkClock(bpm=100, quantum=4) as clock:
        clock.start(time.perf_counter())  # before discovery: alone, beat 0 is (almost) now
        news, _ = poll_until(clock, lambda: clock.peers > 0 and clock.bpm > 132, 2.0)
        assert news == [Transport(True, 0.0)]  # bar 1 again, on the session's next bar line
        now = time.perf_counter()
        assert clock.running and now < clock.t0 <= now + START_MARGIN + 4 * 60 / 133 + MS
        assert bars_agree(clock, peer, 0.0) < MS


@pytest.mark.slow
def test_follows_the_peers_tempo_within_a_beat():
    with LinkPeer(bpm=133, quantum=4, playing=True) as peer, joined(peer, quantum=4) as clock:
        clock.start(time.perf_counter())
        peer.ask("tempo", 150)
        news, took = poll_until(clock, lambda: abs(clock.bpm - 150) < 0.01, 2.0)
        assert abs(clock.bpm - 150) < 0.01 and took < 60 / 133
        assert news == []  # a tempo change keeps the beat where it is: no relocation
        assert bars_agree(clock, peer, 8.0) < MS


@pytest.mark.slow
def test_set_bpm_reaches_the_peer():
    with LinkPeer(bpm=133, quantum=4, playing=True) as peer, joined(peer, quantum=4) as clock:
        clock.start(time.perf_counter())
        clock.set_bpm(97, time.perf_counter())
        assert clock.bpm == pytest.approx(97)
        st = peer.wait_for("tempo", 97.0, timeout=1.0)
        assert st["tempo"] == pytest.approx(97)
        assert bars_agree(clock, peer, 8.0) < MS


@pytest.mark.slow
def test_start_and_stop_both_ways():
    with LinkPeer(bpm=133, quantum=4) as peer, joined(peer, quantum=4) as clock:
        clock.start(time.perf_counter())
        assert peer.wait_for("playing", True)["playing"]  # our start reaches the peer
        peer.ask("stop")
        news, _ = poll_until(clock, lambda: not clock.running, 1.0)
        assert news == [STOPPED] and not clock.running
        peer.ask("play")
        news, _ = poll_until(clock, lambda: clock.running, 1.0)
        assert news == [Transport(True, 0.0)]
        assert clock.t0 == pytest.approx(peer.ask("time", 0.0)["time"], abs=MS)  # bar 1 together
        clock.stop(time.perf_counter())
        assert not peer.wait_for("playing", False)["playing"]  # our stop reaches the peer


@pytest.mark.slow
def test_start_stop_sync_off_ignores_the_peers_transport():
    with LinkPeer(bpm=133, quantum=4) as peer, joined(peer, quantum=4, start_stop=False) as clock:
        clock.start(time.perf_counter())
        time.sleep(0.1)
        assert not peer.ask("state", time.perf_counter())["playing"]
        peer.ask("play")
        peer.ask("stop")
        news, _ = poll_until(clock, lambda: False, 0.2)
        assert news == [] and clock.running


@pytest.mark.slow
def test_seven_eight_on_quantum_three_and_a_half():
    q = bar_quantum((7, 8))
    assert q == 3.5
    with LinkPeer(bpm=133, quantum=q, playing=True) as peer, joined(peer, quantum=q) as clock:
        now = time.perf_counter()
        clock.start(now)
        assert now + START_MARGIN < clock.t0 <= now + START_MARGIN + q * 60 / 133 + MS
        assert bars_agree(clock, peer, 0.0) < MS
        assert bars_agree(clock, peer, 7.0) < MS  # bar 3
        # a two-bar loop: its first step on every other bar line of the session, from beat 0
        grid = Grid((7, 8), 24, bars=2)
        with joined(peer, quantum=q) as fresh, player_on(fresh, Controls(), loop({0: [0], 1: [84]}, grid)) as out:
            time.sleep(10.5 * 60 / 133 + 0.1)  # to the next bar line, and a loop
            clock = fresh
        kicks = [t for t, m in out.got if m.type == "note_on" and m.note == KIT.out_notes[0]]
        snares = [t for t, m in out.got if m.type == "note_on" and m.note == KIT.out_notes[1]]
        assert len(kicks) >= 2 and len(snares) >= 1 and kicks[0] == pytest.approx(clock.t0, abs=0.003)
        assert max(off_grid(t, clock.t0, 7 * 60 / 133) for t in kicks) < 0.003  # loop starts: every 7 beats
        assert max(off_grid(t, peer.ask("bars", kicks[0] - 0.01, 1)["times"][0], q * 60 / 133) for t in kicks) < 0.003
        assert max(off_grid(t, clock.t0 + q * 60 / 133, 7 * 60 / 133) for t in snares) < 0.003  # bar 2


@pytest.mark.slow
def test_the_last_peer_leaving_keeps_tempo_and_phase():
    peer = LinkPeer(bpm=133, quantum=4, playing=True).__enter__()
    try:
        with joined(peer, quantum=4) as clock:
            clock.start(time.perf_counter())
            bar = clock.time_of(16.0)
            peer.close()
            news, _ = poll_until(clock, lambda: clock.peers == 0, 3.0)
            poll_until(clock, lambda: False, 0.2)
            assert clock.peers == 0 and news == [] and clock.running
            assert clock.bpm == pytest.approx(133, abs=0.01)
            assert clock.time_of(16.0) == pytest.approx(bar, abs=MS)
    finally:
        peer.close()


def test_bar_quantum_of_each_meter():
    meters = {(4, 4): 4, (3, 4): 3, (6, 8): 3, (12, 8): 6, (5, 4): 5, (7, 8): 3.5}
    assert {m: bar_quantum(m) for m in meters} == meters


@pytest.mark.parametrize("quantum", [0.0, -4.0, float("nan")])
def test_bad_quantum_is_one_sentence(quantum):
    with pytest.raises(UserError, match=r"^--quantum .*above 0$"):
        LinkClock(quantum=quantum)


@pytest.mark.parametrize("latency", [0.501, -0.6, float("inf")])
def test_bad_latency_is_one_sentence(latency):
    with pytest.raises(UserError, match=r"^--latency .*between -500 and 500$"):
        LinkClock(latency=latency)


def test_options_are_checked_before_link_is_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "link", None)  # a config checks them without the extra
    check_options(None, 0.0)
    check_options(3.5, -0.5)
    with pytest.raises(UserError, match=r"^--quantum 0:"):
        check_options(0.0, 0.0)
    with pytest.raises(UserError, match=r"^--latency 600:"):
        check_options(4.0, 0.6)


def test_without_the_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "link", None)  # import link -> ImportError
    with pytest.raises(UserError, match=r"pip install 'rvae\[link\]'"):
        LinkClock()


# --- the Player on a LinkClock (the Clock contract), in real time ------------------------


class Stamped:
    """An Output keeping (perf_counter, message) of everything the Player sends."""

    lead, lost = 0.0, False

    def __init__(self) -> None:
        self.got: list[tuple[float, mido.Message]] = []

    def send(self, msg: mido.Message) -> None:
        self.got.append((time.perf_counter(), msg))

    def panic(self) -> None:
        pass

    def close(self) -> None:
        pass

    def times(self, kind: str, after: float = 0.0) -> list[float]:
        return [t for t, m in self.got if m.type == kind and t >= after]


def loop(steps: dict[int, list[int]], grid: Grid) -> Pattern:
    """{instrument: [steps]} -> a pattern on ``grid``."""
    hits = np.zeros((len(KIT), grid.steps), np.float32)
    for i, at in steps.items():
        hits[i, at] = 1
    return make_pattern(Groove(hits, hits * 0.8, hits * 0, grid, KIT))


FOUR = loop({0: [0, 48], 1: [24, 72]}, Grid((4, 4), 24))  # kick, snare, kick, snare


@contextmanager
def player_on(clock: LinkClock, controls: Controls, pattern: Pattern = FOUR) -> Iterator[Stamped]:
    """The Player's thread playing ``pattern`` on ``clock``."""
    mailbox, out = Mailbox(), Stamped()
    mailbox.put(pattern)
    player = Player(Sequencer(swap="bar"), mailbox, controls, [out], clock)
    player.start()
    try:
        yield out
    finally:
        player.stop()


def off_grid(t: float, grid0: float, period: float) -> float:
    """Seconds from ``t`` to the nearest line of a grid through ``grid0`` every ``period`` s."""
    k = round((t - grid0) / period)
    return abs(t - (grid0 + k * period))


@pytest.mark.slow
def test_the_player_plays_on_the_peers_beats_and_follows_its_tempo():
    controls = Controls(ControlState(bpm=120.0))  # not the session's: it must not impose it
    with LinkPeer(bpm=133, quantum=4, playing=True) as peer, joined(peer, quantum=4) as clock:
        started = time.perf_counter()
        with player_on(clock, controls) as out:
            time.sleep(2.2)
            bar0 = peer.ask("bars", started, 1)["times"][0]
            beat = 60 / 133
            ons, pulses = out.times("note_on"), out.times("clock")
            assert len(ons) >= 3
            assert started < ons[0] < started + 4 * beat  # bar 1 on the session's next bar line
            assert max(off_grid(t, bar0, 4 * beat) for t in ons[:1]) < 0.003
            assert max(off_grid(t, bar0, beat) for t in ons) < 0.003
            assert max(off_grid(t, bar0, beat / 24) for t in pulses) < 0.003  # the MIDI clock bridge's pulses
            assert len(pulses) == pytest.approx((time.perf_counter() - ons[0]) / beat * 24, abs=3)
            assert peer.ask("state", time.perf_counter())["tempo"] == pytest.approx(133)
            changed = time.perf_counter()
            peer.ask("tempo", 150)
            time.sleep(1.5)
        later = out.times("note_on", after=changed + 60 / 133)  # from one beat after the change on
        assert len(later) >= 2
        for t in later:
            phase = peer.ask("state", t)["phase"]
            assert abs(phase - round(phase)) * 60 / 150 < 0.003


@pytest.mark.slow
def test_the_peers_stop_silences_the_player_and_our_controls_reach_the_peer():
    controls = Controls(ControlState(bpm=120.0))
    with LinkPeer(bpm=133, quantum=4, playing=True) as peer, joined(peer, quantum=4) as clock:
        with player_on(clock, controls) as out:
            time.sleep(1.5)
            assert out.times("note_on")
            controls.update(bpm=101.0)  # a tempo key or /rvae/tempo
            assert peer.wait_for("tempo", 101.0)["tempo"] == pytest.approx(101)
            stopped = time.perf_counter()
            peer.ask("stop")
            time.sleep(0.8)
            assert out.times("note_on", after=stopped + 0.05) == []  # silence
            ons = [m.note for _, m in out.got if m.type == "note_on"]
            offs = [m.note for _, m in out.got if m.type == "note_off"]
            assert sorted(ons) == sorted(offs)  # no hanging note
            assert [m.type for t, m in out.got if t > stopped][-1] == "control_change"  # All Notes Off
            controls.update(running=False)  # the space bar: stops the peers (already stopped)
            time.sleep(0.05)  # the Player reads the controls every turn (10 ms at most)
            controls.update(running=True)  # and starts everyone again
            assert peer.wait_for("playing", True)["playing"]
            time.sleep(1.0)
            assert out.times("note_on", after=stopped + 0.8)
            controls.update(running=False)
            assert not peer.wait_for("playing", False)["playing"]
