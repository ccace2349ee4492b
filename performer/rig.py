"""The rig changing under a show, on JACK: the server restarted, gear connected late.

    rig = JackRig(open_out, open_in, player, say)   # open_*: reopen a port by the name the user gave
    rig.start()          # a thread polling every 0.1 s
    ...
    rig.stop()

Server restarted (or killed and started again): the output's watch marks the port lost, so
the Player's sends are no-ops and never block. The rig says so, waits for a server to answer,
reopens the ports by name (``open_out``, ``open_in``), reconnects what our virtual ports were
connected to (as soon as each peer is back) and swaps the new ports in: ``LiveOutput`` is what
the Player holds, its port replaced with one pointer swap. The clock never stopped, so playing
resumes on its grid.

Gear connected late: a destination newly connected to our output while the Player sends clock
gets Song Position Pointer + Continue at the next bar (``Player.resync``), so it locks in where
the bar starts; after a restart every reconnected destination is such a newcomer.
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

from performer.ports import InputPort, JackClient, OutputPort, close_bounded, jack_client

if TYPE_CHECKING:
    from performer.sequencer import Player

__all__ = ["JackRig", "LiveOutput"]

logger = logging.getLogger(__name__)
POLL = 0.1  # seconds between looks at the server and the connections


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
    module docstring). ``say`` gets one line per change of state."""

    def __init__(
        self,
        out: LiveOutput,
        open_out: Callable[[], OutputPort],
        inp: InputPort | None,
        open_in: Callable[[], InputPort] | None,
        player: Player,
        say: Callable[[str], object],
    ) -> None:
        self.out, self.open_out, self.inp, self.open_in = out, open_out, inp, open_in
        self.player, self.say = player, say
        self.recoveries: list[float] = []  # seconds from the server answering to ports reopened
        self._client: JackClient | None = None
        self._remembered: dict[str, set[str]] = {}  # "out"/"in" -> the ports ours was connected to
        self._pending: dict[str, set[str]] = {}  # after a restart: those not reconnected yet
        self._seen: set[str] = set()  # destinations of our output at the last look
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dead: list[object] = []  # ports of a dead server: kept, never closed (libjack would wait on it)

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
        while not self._stop.wait(POLL):
            try:
                self._look()
            except Exception:
                logger.exception("watching the JACK rig failed; going on")

    def _look(self) -> None:
        if self.out.lost:
            self._recover()
            return
        if self._client is None or self._client.gone:
            self._client = jack_client(f"rvae-rig-{os.getpid()}")
            if self._client is None:
                return
        for role, port in self._our_ports().items():
            peers = set(self._client.connections(port))
            for peer in self._pending.get(role, set()) - peers:  # reconnect each peer once it is back
                if self._client.connect(*((port, peer) if role == "out" else (peer, port))):
                    peers.add(peer)
                    self._pending[role].discard(peer)
            if peers:  # not emptied: a dying server can show our port unconnected before it says it died
                self._remembered[role] = peers
            if role == "out":
                if peers - self._seen:
                    self.player.resync()
                self._seen = peers

    def _our_ports(self) -> dict[str, str]:
        """{"out"/"in": the full name of our virtual port}: client and port both carry the name,
        JACK adds -01... to a repeated client. A port connected to existing gear is not ours to
        remember: reopening finds that gear by name again."""
        assert self._client is not None
        found = {}
        for role, port in (("out", self.out.port), ("in", self.inp)):
            if port is not None and port.virtual:
                names = self._client.ports(f"^{re.escape(port.name)}(-[0-9]+)?:{re.escape(port.name)}$")
                if names:
                    found[role] = names[0]
        return found

    def _recover(self) -> None:
        self.say("JACK server gone: playing on, silent, until it is back")
        self._client = None  # its server is gone: closing it would only wait
        while self._client is None:
            if self._stop.wait(POLL):
                return
            self._client = jack_client(f"rvae-rig-{os.getpid()}")
        back = time.perf_counter()
        self._dead.append(self.out.port)
        self.out.port = self.open_out()
        if self.inp is not None and self.open_in is not None:
            self._dead.append(self.inp)
            self.inp = self.open_in()
        self._pending = {role: set(peers) for role, peers in self._remembered.items()}
        self._seen = set()  # every destination is new to this server: SPP + Continue at the next bar
        took = time.perf_counter() - back
        self.recoveries.append(took)
        self.say(f"JACK server back after a restart: ports reopened in {took:.2f} s, reconnecting")
