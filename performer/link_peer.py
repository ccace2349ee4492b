"""A real Ableton Link peer in a process of its own, for tests and benchmarks (and for
trying ``--clock link`` without another Link app: ``python -m performer.link_peer --play``).

Run as a script it joins the Link session at a tempo and answers one JSON line per
command line on stdin; ``LinkPeer`` starts it and talks to it:

    with LinkPeer(bpm=133, quantum=4, playing=True) as peer:
        peer.ask("state", time.perf_counter())  # {"tempo":133.0, "phase":..., "peers":1, ...}

Commands (times are ``time.perf_counter()`` seconds, the same CLOCK_MONOTONIC in every
process; Link itself counts CLOCK_MONOTONIC_RAW microseconds, converted here on purpose
independently of performer/link.py, so a test checks that conversion against this one):

    state T          tempo, playing, peers, and the session's beat and phase at T
    bars T N         the times of the next N bar starts (phase 0) at or after T
    time B           the time of this peer's beat B (its beat 0: where its play started)
    tempo BPM        set the session's tempo now, for every peer
    play | stop      start or stop the transport (reaches peers with start/stop sync on)
    quit

Only the standard library and ``link`` (imported when run): the peer shares no code with
what it checks, performer/link.py.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager

# Every Link peer on the machine (and the LAN) is one session: two test runs at once
# would change each other's tempo. Link tests and benchmarks take turns with this lock.
LOCK_PATH = os.path.join(tempfile.gettempdir(), "rvae-link-tests.lock")


@contextmanager
def session_lock(timeout: float = 300.0) -> Iterator[None]:
    from performer.testing import take_turn

    with open(LOCK_PATH, "w") as f:
        take_turn(f, "Link test", timeout)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class LinkPeer:
    """The peer script as a subprocess; ``ask`` sends one command and returns its answer."""

    def __init__(
        self,
        bpm: float = 120.0,
        quantum: float = 4.0,
        playing: bool = False,
        start_stop: bool = True,
        settle: float = 1.2,
    ) -> None:
        # -m, not the file's path: run as a script, its folder would come first on sys.path
        # and ``import link`` would find performer/link.py
        args = [sys.executable, "-m", "performer.link_peer", "--bpm", str(bpm), "--quantum", str(quantum)]
        args += ["--play"] if playing else []
        args += [] if start_stop else ["--no-start-stop"]
        self.args = args
        self.settle = settle
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LinkPeer:
        self.proc = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._read()  # "ready": the peer is enabled
        # When two Link sessions meet, the older one wins (Link compares their clocks' ages,
        # within 0.5 s a random id decides). Measured here: a peer 0.6 s older than the Link
        # instance made after it kept the session in 4 joins of 8; 1.6 s older, in 8 of 8.
        time.sleep(self.settle)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        try:
            assert proc.stdin is not None
            proc.stdin.write("quit\n")
            proc.stdin.flush()
            proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def _read(self) -> dict:
        assert self.proc is not None and self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the Link peer exited (status {self.proc.poll()})")
        return json.loads(line)

    def ask(self, *words: object) -> dict:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(" ".join(str(w) for w in words) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def wait_for(self, key: str, value: object, timeout: float = 2.0) -> dict:
        """Poll ``state`` until ``key`` has ``value``; returns the last state either way."""
        give_up = time.perf_counter() + timeout
        while True:
            st = self.ask("state", time.perf_counter())
            if st[key] == value or time.perf_counter() > give_up:
                return st
            time.sleep(0.01)


def _offset(clock) -> float:
    """Link's clock minus perf_counter, in seconds: the tightest of a few bracketed reads."""
    best = (1.0, 0.0)
    for _ in range(5):
        a = time.perf_counter()
        m = clock.micros()
        b = time.perf_counter()
        best = min(best, (b - a, m / 1e6 - (a + b) / 2))
    return best[1]


def main() -> None:
    import link

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--bpm", type=float, default=120.0)
    ap.add_argument("--quantum", type=float, default=4.0)
    ap.add_argument("--play", action="store_true")
    ap.add_argument("--no-start-stop", dest="start_stop", action="store_false")
    args = ap.parse_args()
    q = args.quantum
    peer = link.Link(args.bpm)
    peer.startStopSyncEnabled = args.start_stop
    clock = peer.clock()
    if args.play:
        st = peer.captureAppSessionState()
        st.setIsPlayingAndRequestBeatAtTime(True, clock.micros(), 0.0, q)
        peer.commitAppSessionState(st)
    peer.enabled = True

    def say(**kw: object) -> None:
        print(json.dumps(kw), flush=True)

    say(ready=True)
    for line in sys.stdin:
        cmd, *rest = line.split()
        off = _offset(clock)
        st = peer.captureAppSessionState()
        now = clock.micros()
        if cmd == "state":
            t = round((float(rest[0]) + off) * 1e6)
            say(
                tempo=st.tempo(),
                playing=st.isPlaying(),
                peers=peer.numPeers(),
                beat=st.beatAtTime(t, q),
                phase=st.phaseAtTime(t, q),
            )
        elif cmd == "bars":
            t = round((float(rest[0]) + off) * 1e6)
            beat = st.beatAtTime(t, q)
            first = beat - st.phaseAtTime(t, q)
            first += q if first < beat else 0.0
            say(times=[st.timeAtBeat(first + k * q, q) / 1e6 - off for k in range(int(rest[1]))])
        elif cmd == "time":
            say(time=st.timeAtBeat(float(rest[0]), q) / 1e6 - off)
        elif cmd == "tempo":
            st.setTempo(float(rest[0]), now)
            peer.commitAppSessionState(st)
            say(ok=True)
        elif cmd == "play":
            st.setIsPlayingAndRequestBeatAtTime(True, now, 0.0, q)
            peer.commitAppSessionState(st)
            say(ok=True)
        elif cmd == "stop":
            st.setIsPlaying(False, now)
            peer.commitAppSessionState(st)
            say(ok=True)
        elif cmd == "quit":
            break
        else:
            say(error=f"unknown command {cmd!r}")
    peer.enabled = False


if __name__ == "__main__":
    main()
