"""Ableton Link clock figures against a real Link peer process on this machine.

    .venv/bin/python scripts/bench_link.py [--out bench_link.json]

- discovery: from enabling Link to seeing the peer, and to having adopted its tempo;
- poll: what the clock thread pays per turn (one captured session state, the peer count,
  the clock offset), while the peer changes tempo 20 times a second;
- agreement: our beat <-> time against the peer's (its own conversion of Link's clock);
- the Player on the Link clock, 16ths at 90/120/174 BPM, the peer changing tempo by +10 %
  halfway: each note-on's and MIDI clock pulse's send time against the peer's grid,
  before the change and from one beat after it (the beat in between is where rvae moves to
  the new tempo). This is the send time on the clock thread: what JACK adds on top is
  bench_performer's business.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from performer.clock import PPQN  # noqa: E402
from performer.control import Controls, ControlState  # noqa: E402
from performer.link import LinkClock  # noqa: E402
from performer.link_peer import LinkPeer, session_lock  # noqa: E402
from performer.sequencer import Mailbox, Player, Sequencer, make_pattern  # noqa: E402
from rvae.grid import Grid  # noqa: E402
from rvae.groove import Groove  # noqa: E402
from rvae.kit import KITS  # noqa: E402


def stats(values, scale=1.0) -> dict:
    a = np.abs(np.asarray(values, dtype=float)) * scale
    if len(a) == 0:
        return {"n": 0}
    return {
        "n": len(a),
        "p50": round(float(np.percentile(a, 50)), 4),
        "p99": round(float(np.percentile(a, 99)), 4),
        "max": round(float(a.max()), 4),
    }


def join(peer: LinkPeer, quantum: float = 4.0) -> LinkClock:
    clock = LinkClock(bpm=90.0, quantum=quantum).open()
    clock.wait_for_peers(2.0)
    tempo = peer.ask("state", time.perf_counter())["tempo"]
    give_up = time.perf_counter() + 1.0
    while abs(clock.bpm - tempo) > 0.01 and time.perf_counter() < give_up:
        time.sleep(0.002)
        clock.poll(time.perf_counter())
    return clock


def discovery(trials: int) -> dict:
    seen, adopted = [], []
    for _ in range(trials):
        with LinkPeer(bpm=133, playing=True):
            clock = LinkClock(bpm=90.0)
            t0 = time.perf_counter()
            clock.open()
            while clock.peers == 0 and time.perf_counter() - t0 < 3:
                time.sleep(0.0005)
                clock.poll(time.perf_counter())
            seen.append(time.perf_counter() - t0)
            while abs(clock.bpm - 133) > 0.01 and time.perf_counter() - t0 < 3:
                time.sleep(0.0005)
                clock.poll(time.perf_counter())
            adopted.append(time.perf_counter() - t0)
            clock.close()
    return {"peer_seen_s": stats(seen), "tempo_adopted_s": stats(adopted)}


def poll_cost(seconds: float) -> dict:
    with LinkPeer(bpm=120, playing=True) as peer:
        clock = join(peer)
        clock.start(time.perf_counter())
        done = threading.Event()

        def wobble() -> None:
            k = 0
            while not done.is_set():
                peer.ask("tempo", 120 + (k % 2))
                k += 1
                time.sleep(0.05)

        t = threading.Thread(target=wobble)
        t.start()
        took = []
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            a = time.perf_counter()
            clock.poll(a)
            took.append(time.perf_counter() - a)
            time.sleep(0.001)
        done.set()
        t.join()
        clock.close()
    return {"poll_us": stats(took, 1e6)}


def agreement() -> dict:
    with LinkPeer(bpm=133, playing=True) as peer:
        clock = join(peer)
        now = time.perf_counter()
        clock.start(now)
        bars = peer.ask("bars", clock.t0 - 0.001, 50)["times"]
        bar_err = [clock.time_of(4.0 * k) - t for k, t in enumerate(bars)]
        phase_err = []
        for t in now + np.random.default_rng(0).uniform(0, 2, 200):
            p = peer.ask("state", float(t))["phase"]
            d = (clock.beat_at(float(t)) - p) % 4
            phase_err.append(min(d, 4 - d) * 60 / clock.bpm)
        clock.close()
    return {"bar_line_us": stats(bar_err, 1e6), "phase_us": stats(phase_err, 1e6)}


class Stamped:
    lead, lost = 0.0, False

    def __init__(self) -> None:
        self.got: list = []

    def send(self, msg) -> None:
        self.got.append((time.perf_counter(), msg.type))

    def panic(self) -> None:
        pass

    def close(self) -> None:
        pass


def sixteenths() -> object:
    kit = KITS["default"]
    hits = np.zeros((len(kit), 96), np.float32)
    hits[2, ::6] = 1  # a hit every 16th
    return make_pattern(Groove(hits, hits * 0.8, hits * 0, Grid((4, 4), 24), kit))


def off_grid(times, grid0: float, period: float) -> list[float]:
    return [t - (grid0 + round((t - grid0) / period) * period) for t in times]


def player_run(bpm: float, seconds: float) -> dict:
    with LinkPeer(bpm=bpm, playing=True) as peer:
        clock = join(peer)
        mailbox, out = Mailbox(), Stamped()
        mailbox.put(sixteenths())
        player = Player(Sequencer(swap="bar"), mailbox, Controls(ControlState(bpm=bpm)), [out], clock)
        sys.setswitchinterval(0.0005)  # as rvae perform does
        player.start()
        time.sleep(seconds / 2)
        grid_a = peer.ask("bars", time.perf_counter(), 1)["times"][0]
        changed = time.perf_counter()
        peer.ask("tempo", bpm * 1.1)
        time.sleep(0.2)
        grid_b = peer.ask("bars", time.perf_counter(), 1)["times"][0]
        time.sleep(seconds / 2)
        player.stop()
        clock.close()
    sys.setswitchinterval(0.005)
    res = {}
    for kind, per_beat in (("note_on", 4), ("clock", PPQN)):
        times = [t for t, k in out.got if k == kind]
        before = [t for t in times if t < changed]
        after = [t for t in times if t > changed + 60 / bpm]
        err = off_grid(before, grid_a, 60 / bpm / per_beat) + off_grid(after, grid_b, 60 / (bpm * 1.1) / per_beat)
        res[kind + "_ms"] = stats(err, 1e3)
        res[kind + "_in_the_change_beat"] = len(times) - len(before) - len(after)
    res["late"] = player.late
    res["missed_ticks"] = player.missed
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, help="write the figures as JSON here too")
    ap.add_argument("--seconds", type=float, default=6.0, help="length of each Player run")
    args = ap.parse_args()
    with session_lock():
        result = {
            "machine": f"{platform.machine()} {platform.system()} {platform.release()}",
            "python": platform.python_version(),
            "discovery": discovery(5),
            "poll": poll_cost(3.0),
            "agreement": agreement(),
            "player_send_time": {str(bpm): player_run(bpm, args.seconds) for bpm in (90, 120, 174)},
        }
    text = json.dumps(result, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
