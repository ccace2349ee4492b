"""The Link clock against a real Link peer: another process on this machine holds the session.

Times compared are perf_counter seconds on both sides; the peer converts Link's clock on
its own (tests/link_peer.py), so these tests check performer/link.py's conversion too.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from link_peer import LinkPeer, session_lock

from performer.link import LinkClock, bar_quantum
from rvae.errors import UserError

MS = 0.001


@pytest.fixture(autouse=True)
def _one_session_at_a_time():
    with session_lock():
        yield


@contextmanager
def joined(**kw) -> Iterator[LinkClock]:
    with LinkClock(**kw) as clock:
        assert clock.wait_for_peers(2.0) == 1, "the peer was not discovered within 2 s"
        yield clock


def poll_until(clock: LinkClock, done, timeout: float) -> tuple[list[str], float]:
    """Poll as the clock thread does (every 2 ms) until ``done()``; returns the news seen and the time taken."""
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
    with LinkPeer(bpm=133, quantum=4, playing=True) as peer, joined(bpm=90, quantum=4) as clock:
        assert clock.bpm == pytest.approx(133, abs=0.01)  # the session's tempo, not ours
        now = time.perf_counter()
        clock.start(now)
        # beat 0 is the session's next bar line
        assert now < clock.t0 <= now + 4 * 60 / 133 + MS
        phase = peer.ask("state", clock.t0)["phase"]
        assert min(phase, 4 - phase) * 60 / 133 < MS
        assert bars_agree(clock, peer, 0.0) < MS
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
        clock.start(time.perf_counter())  # before discovery: alone, beat 0 is now
        news, _ = poll_until(clock, lambda: clock.peers > 0 and clock.bpm > 132, 2.0)
        assert "jump" in news
        now = time.perf_counter()
        assert clock.running and now < clock.t0 <= now + 4 * 60 / 133 + MS
        assert bars_agree(clock, peer, 0.0) < MS


@pytest.mark.slow
def test_follows_the_peers_tempo_within_a_beat():
    with LinkPeer(bpm=133, quantum=4, playing=True) as peer, joined(quantum=4) as clock:
        clock.start(time.perf_counter())
        peer.ask("tempo", 150)
        news, took = poll_until(clock, lambda: abs(clock.bpm - 150) < 0.01, 2.0)
        assert abs(clock.bpm - 150) < 0.01 and took < 60 / 133
        assert news == []  # a tempo change keeps the beat where it is: no relocation
        assert bars_agree(clock, peer, 8.0) < MS


@pytest.mark.slow
def test_set_bpm_reaches_the_peer():
    with LinkPeer(bpm=133, quantum=4, playing=True) as peer, joined(quantum=4) as clock:
        clock.start(time.perf_counter())
        clock.set_bpm(97, time.perf_counter())
        assert clock.bpm == pytest.approx(97)
        st = peer.wait_for("tempo", 97.0, timeout=1.0)
        assert st["tempo"] == pytest.approx(97)
        assert bars_agree(clock, peer, 8.0) < MS


@pytest.mark.slow
def test_start_and_stop_both_ways():
    with LinkPeer(bpm=133, quantum=4) as peer, joined(quantum=4) as clock:
        clock.start(time.perf_counter())
        assert peer.wait_for("playing", True)["playing"]  # our start reaches the peer
        peer.ask("stop")
        news, _ = poll_until(clock, lambda: not clock.running, 1.0)
        assert news == ["stop"] and not clock.running
        peer.ask("play")
        news, _ = poll_until(clock, lambda: clock.running, 1.0)
        assert news == ["start"]
        assert clock.t0 == pytest.approx(peer.ask("time", 0.0)["time"], abs=MS)  # bar 1 together
        clock.stop(time.perf_counter())
        assert not peer.wait_for("playing", False)["playing"]  # our stop reaches the peer


@pytest.mark.slow
def test_start_stop_sync_off_ignores_the_peers_transport():
    with LinkPeer(bpm=133, quantum=4) as peer, joined(quantum=4, start_stop=False) as clock:
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
    with LinkPeer(bpm=133, quantum=q, playing=True) as peer, joined(quantum=q) as clock:
        now = time.perf_counter()
        clock.start(now)
        assert now < clock.t0 <= now + q * 60 / 133 + MS
        assert bars_agree(clock, peer, 0.0) < MS
        assert bars_agree(clock, peer, 7.0) < MS  # bar 3


@pytest.mark.slow
def test_the_last_peer_leaving_keeps_tempo_and_phase():
    peer = LinkPeer(bpm=133, quantum=4, playing=True).__enter__()
    try:
        with joined(quantum=4) as clock:
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


def test_without_the_extra_says_how_to_install(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "link", None)  # import link -> ImportError
    with pytest.raises(UserError, match=r"pip install 'rvae\[link\]'"):
        LinkClock()
