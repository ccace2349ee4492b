"""The rig changing under a show, on JACK: the server restarted, gear connected late.

    rig = JackRig(out, open_out, inp, open_in, player, say, learn=played, open_learn=...)
    rig.start()          # a thread polling every 0.1 s (every 0.02 s while ports are missing)
    ...
    rig.stop()

Server restarted (or killed and started again): the output's watch marks the port lost, so
the Player's sends are no-ops and never block. The rig says so, waits for a server to answer,
reopens every port by name (``open_out``, the MIDI input ``open_in`` of the clock or CC, the
learning input ``open_learn``), reconnects what our virtual ports were connected to (as soon
as each peer is back) and swaps the new ports in: ``LiveOutput`` is what the Player holds, its
port replaced with one pointer swap; ``rig.inputs`` holds the inputs now open. The clock never
stopped, so playing resumes on its grid.

A port that fed or heard named gear (``--midi-out fluidsynth``) opens again only when that
gear is back: until then the port stays missing (silent; the rig says it waits), and the
same quick polling reopens it, connected to the gear, the moment it reappears, rather than
making a virtual port nobody asked for.

Gear connected late: a destination newly connected to our output while the Player sends clock
gets Song Position Pointer + Continue at the next bar (``Player.resync``), so it locks in where
the bar starts; after a restart every reconnected destination is such a newcomer.

Recovery time (measured with scripts/bench_performer.py --restart-at, the machine loaded): a
python-rtmidi JACK port holds the GIL while its client opens and its port registers (37-57 ms
each, load 11 on 2 cores), which holds back the clock thread: so every port opens before the
new output is swapped in, and then at once (not at the next poll) its peers are reconnected.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import mido

from performer.ports import InputPort, JackClient, OutputPort, close_bounded, find_port, jack_client

if TYPE_CHECKING:
    from performer.sequencer import Player

__all__ = ["JackRig", "LiveOutput"]

logger = logging.getLogger(__name__)
POLL = 0.1  # seconds between looks at the server and the connections
RECOVER_POLL = 0.02  # while ports are missing: the server's (or named gear's) return is seen this soon

OpenOutput = Callable[..., OutputPort]  # called with among=[destinations' names]
OpenInput = Callable[..., InputPort]  # called with among=[sources' names]


class LiveOutput:
    """An ``Output`` whose MIDI port the rig replaces after a server restart. Only the clock
    thread sends; a replaced (lost) port drops what reaches it in the meantime."""

    def __init__(self, port: OutputPort) -> None:
        self.port = port

    def send(self, msg: mido.Message) -> None:
        self.port.send(msg)

    def panic(self) -> None:
        self.port.panic()

    @property
    def lead(self) -> float:
        return self.port.lead

    @property
    def lost(self) -> bool:
        return self.port.lost

    def close(self) -> None:
        self.port.close()


class JackRig:
    """Watches the JACK server and our ports' connections from a thread of its own (see the
    module docstring). ``say`` gets one line per change of state. ``open_out`` and the input
    openers take ``among`` (names listed by the rig's client: no probe client of their own)."""

    def __init__(
        self,
        out: LiveOutput,
        open_out: OpenOutput,
        inp: InputPort | None,
        open_in: OpenInput | None,
        player: Player,
        say: Callable[[str], object],
        learn: InputPort | None = None,
        open_learn: OpenInput | None = None,
    ) -> None:
        self.out, self.open_out = out, open_out
        self.inputs: dict[str, InputPort] = {}  # "in" (clock, CC), "learn": the ports open now
        self._open_in: dict[str, OpenInput] = {}
        for role, port, reopen in (("in", inp, open_in), ("learn", learn, open_learn)):
            if port is not None and reopen is not None:
                self.inputs[role], self._open_in[role] = port, reopen
        self.player, self.say = player, say
        self.recoveries: list[float] = []  # seconds from the server answering to every port reopened
        self._client: JackClient | None = None
        self._remembered: dict[str, set[str]] = {}  # role -> the ports ours was connected to
        self._pending: dict[str, set[str]] = {}  # after a restart: those not reconnected yet
        self._seen: set[str] = set()  # destinations of our output at the last look
        self._missing: set[str] = set()  # roles whose port died with the server, not reopened yet
        self._waiting_said: set[str] = set()
        self._back = 0.0  # when the server answered again
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dead: list[object] = []  # ports of a dead server: kept, never closed (libjack would wait on it)

    @property
    def inp(self) -> InputPort | None:
        """The MIDI input (clock, CC) open now."""
        return self.inputs.get("in")

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rvae-rig", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        client, self._client = self._client, None
        if client is not None:
            close_bounded(client.close, "the rig's JACK client")

    def _run(self) -> None:
        while not self._stop.wait(RECOVER_POLL if self._missing or self.out.lost else POLL):
            try:
                self._look()
            except Exception:
                logger.exception("watching the JACK rig failed; going on")

    def _look(self) -> None:
        if self.out.lost and "out" not in self._missing:  # the server went away
            self.say("JACK server gone: playing on, silent, until it is back")
            self._missing = {"out", *self.inputs}
            self._waiting_said = set()
            self._client = None  # its server is gone: closing it would only wait
        if self._client is None or self._client.gone:
            self._client = jack_client(f"rvae-rig-{os.getpid()}")
            if self._client is None:
                return
            if self._missing:
                self._back = time.perf_counter()
                logger.info("JACK server answering again at perf_counter %.6f s", self._back)  # for the benchmark
                self._pending = {role: set(peers) for role, peers in self._remembered.items()}
                self._seen = set()  # every destination is new to this server: SPP + Continue at the next bar
        if self._missing:
            self._reopen()
        self._reconnect()

    def _reopen(self) -> None:
        """Open again every missing port that can be: all before any is used (see the module
        docstring), the output swapped in last."""
        assert self._client is not None
        took: dict[str, float] = {}
        new: dict[str, OutputPort | InputPort] = {}
        names = {"out": self._client.destinations()}
        for role in sorted(self._missing, key=lambda r: r != "out"):
            old = self.out.port if role == "out" else self.inputs[role]
            among = names["out"] if role == "out" else names.setdefault("in", self._client.sources())
            if not old.virtual and find_port(among, old.wanted) is None:  # named gear, not back yet
                if role not in self._waiting_said:
                    self._waiting_said.add(role)
                    self.say(f"waiting for {old.wanted!r} to come back after the JACK restart ({_ROLE[role]})")
                continue
            t = time.perf_counter()
            try:
                new[role] = self.open_out(among=among) if role == "out" else self._open_in[role](among=among)
            except Exception as e:  # gone again between the listing and the open: the next look tries again
                logger.warning("reopening the %s failed (%s); trying again", _ROLE[role], e)
                continue
            took[role] = time.perf_counter() - t
        for role, port in sorted(new.items(), key=lambda kv: kv[0] == "out"):
            if isinstance(port, OutputPort):
                self._dead.append(self.out.port)
                self.out.port = port
            else:
                self._dead.append(self.inputs[role])
                self.inputs[role] = port
            self._missing.discard(role)
            if role in self._waiting_said:
                self.say(f"{_ROLE[role]} connected to {port.name!r} again")
        if not new:
            return
        self._reconnect()
        stages = ", ".join(f"{_ROLE[r]} {s:.2f} s" for r, s in took.items())
        since = time.perf_counter() - self._back
        if not self._missing:
            self.recoveries.append(since)
            self.say(f"JACK server back after a restart: ports reopened in {since:.2f} s ({stages}), reconnected")
        else:
            logger.info("JACK server back: reopened %s %.2f s after it answered", stages, since)

    def _reconnect(self) -> None:
        """Reconnect remembered peers as they come back; remember what ours are connected to;
        SPP + Continue for destinations new to our output."""
        assert self._client is not None
        for role, port in self._our_ports().items():
            peers = set(self._client.connections(port))
            for peer in self._pending.get(role, set()) - peers:  # reconnect each peer once it is back
                if self._client.connect(*((port, peer) if role == "out" else (peer, port))):
                    peers.add(peer)
                    self._pending[role].discard(peer)
                    logger.info(
                        "reconnected %s to %s, %.2f s after the server answered",
                        port,
                        peer,
                        time.perf_counter() - self._back,
                    )
            if peers:  # not emptied: a dying server can show our port unconnected before it says it died
                self._remembered[role] = peers
            if role == "out":
                if peers - self._seen:
                    self.player.resync()
                self._seen = peers

    def _our_ports(self) -> dict[str, str]:
        """{role: the full name of our virtual port}: client and port both carry the name,
        JACK adds -01... to a repeated client. A port connected to existing gear is not ours to
        remember: reopening finds that gear by name again. A missing role is left out."""
        assert self._client is not None
        found = {}
        ours: dict[str, OutputPort | InputPort] = {"out": self.out.port, **self.inputs}
        for role, port in ours.items():
            if port.virtual and role not in self._missing:
                names = self._client.ports(f"^{re.escape(port.name)}(-[0-9]+)?:{re.escape(port.name)}$")
                if names:
                    found[role] = names[0]
        return found


_ROLE = {"out": "MIDI out", "in": "MIDI in", "learn": "learning input"}
