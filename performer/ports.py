"""MIDI ports for the performer: mido messages over python-rtmidi, guarded.

    from performer.ports import open_input, open_output

    with open_output("rvae", api="jack") as out:        # a virtual port "rvae:rvae"
        out.send(mido.Message("note_on", channel=9, note=36, velocity=100))
    # closing sent the note-off and All Notes Off

    with open_input("clock", "jack", lambda msg, stamp: ...) as inp:
        ...                                              # msg is a mido.Message, stamp perf_counter()

Names. ``open_output(name)`` and ``open_input(name)`` first look for an existing port of
the other side whose full name contains ``name`` (case-insensitive) and connect to it;
if there is none they create a virtual port. A virtual port is a client called ``name``
with a port called ``name``: JACK shows it as ``rvae:rvae`` (``jack_lsp``; a second
client of the same name becomes ``rvae-01:rvae``), ALSA as ``rvae:rvae 128:0``. When we
connect to an existing port our own end is ``rvae:out`` or ``rvae:in`` (``rvae-01:in``...).
Matching skips the virtual ports this process opened itself, so an output named "rvae"
never connects to our own input "rvae-in" (our notes would come back as control input).

Direction words follow the caller: ``list_ports()["outputs"]`` are the ports we can send
to (JACK *input* ports, in ``jack_lsp`` terms), ``"inputs"`` those we can receive from.

Threads. One thread sends (the clock thread): ``OutputPort`` takes no lock, so ``send``,
``panic`` and ``close`` must not run on two threads at once (close after that thread has
been joined). An input callback runs on rtmidi's thread (on JACK, the JACK process thread,
which runs SCHED_FIFO): it must only stamp, queue and return.

Failure. A send that fails (rtmidi error, port or JACK server gone) marks the port
``lost``: one warning is logged and every later send is a no-op, so the clock thread
never sees an exception from the port. On JACK a dead server does not fail a send: rtmidi
queues into a ring buffer nobody drains and, once it is full, spins forever holding the
GIL (measured: the whole process freezes after ~2300 messages). So a JACK output also
registers a port-less watch client whose shutdown callback marks the port lost first. A
server that stalls without shutting down (frozen, SIGSTOP) sends no shutdown: the output
also drops what comes past QUEUE_BYTES queued since the server's last cycle, and sends the
note-offs it dropped once cycles run again.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import gc
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable
from typing import Protocol, TypeVar

import mido
import rtmidi

from rvae.errors import UserError

__all__ = [
    "API_NAMES",
    "InputCallback",
    "InputPort",
    "JackClient",
    "Output",
    "OutputPort",
    "available_apis",
    "backend",
    "find_port",
    "list_ports",
    "on_any_api",
    "open_input",
    "open_output",
]

logger = logging.getLogger(__name__)

# our API names -> mido's rtmidi backend names (rtmidi.API_<name>)
API_NAMES = {"alsa": "LINUX_ALSA", "jack": "UNIX_JACK", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}
_RTMIDI_TO_OURS = {getattr(rtmidi, "API_" + v): k for k, v in API_NAMES.items()}

ALL_NOTES_OFF = 123
ALL_SOUND_OFF = 120
# Bytes we let wait for one JACK cycle: half of rtmidi's 16 kB ring buffer (a message takes
# its bytes and 4 more). Past that the server has stopped draining it (a stalled or frozen
# server), and one more message could fill it: rtmidi then spins holding the GIL.
QUEUE_BYTES = 8192
_SETTLE = 0.02  # seconds with the GIL let go before a JACK input closes: a few cycles (2.7 ms each at -p 128)

InputCallback = Callable[[mido.Message, float], None]
T = TypeVar("T")


class Output(Protocol):
    """What the Player asks of anything it plays to: the MIDI port (``OutputPort``), the
    audio preview (``audio.AudioPreview``), a recording (``record.Recording``). Only the
    clock thread calls ``send`` and ``panic``; ``close`` runs after it has stopped."""

    def send(self, msg: mido.Message) -> None:
        """Take one message now; never raises (a failing output becomes ``lost``)."""
        ...

    def panic(self) -> None:
        """Silence everything this output left sounding."""
        ...

    @property
    def lead(self) -> float:
        """Seconds to send ahead of an event's time so that it lands on time (0 for most)."""
        ...

    @property
    def lost(self) -> bool:
        """The output failed and drops what it is sent (shown in the status)."""
        ...

    def close(self) -> None: ...


def _available() -> list[str]:
    return [_RTMIDI_TO_OURS[a] for a in rtmidi.get_compiled_api() if a in _RTMIDI_TO_OURS]


def backend(api: str | None) -> mido.Backend:
    """The mido rtmidi backend for ``api`` ("alsa", "jack", "coremidi", "winmm", any case);
    None = rtmidi's default (on Linux ALSA, even when there is no ALSA sequencer)."""
    if api is None:
        return mido.Backend("mido.backends.rtmidi")
    key = api.lower()
    available = _available()
    if key not in available:
        what = (
            f"unknown MIDI API {api!r}"
            if key not in API_NAMES
            else f"MIDI API {api!r} is not compiled into python-rtmidi here"
        )
        raise UserError(f"{what}; available: {', '.join(available) or 'none'}.")
    return mido.Backend(f"mido.backends.rtmidi/{API_NAMES[key]}")


def _rtapi(api: str | None) -> int:
    be = backend(api)
    return getattr(rtmidi, "API_" + be.api) if be.api else rtmidi.API_UNSPECIFIED


def list_ports(api: str | None = None) -> dict[str, list[str]]:
    """{"inputs": ports we can receive from, "outputs": ports we can send to}, full names.
    Opens (and closes) a client per direction: not for the clock thread."""
    be = backend(api)
    try:
        with quiet_stderr():  # ALSA prints its own lines when it has no sequencer
            return {"inputs": be.get_input_names(), "outputs": be.get_output_names()}
    except rtmidi.RtMidiError as err:
        others = [a for a in _available() if a != (api or "alsa").lower()]
        hint = f" (try --midi-api {' or '.join(others)})" if others else ""
        raise UserError(f"cannot list MIDI ports with {api or 'rtmidi default API'}: {err}{hint}") from err


# --- our own virtual ports, so that matching can skip them --------------------------------

_own_lock = threading.Lock()
_own_virtual: Counter[str] = Counter()  # port names of open virtual ports (client = port = name)


def _is_own(full_name: str) -> bool:
    # JACK "client:port", ALSA "client:port 128:0"; JACK renames a repeated client "name-01"
    client, _, port = re.sub(r" \d+:\d+$", "", full_name).partition(":")
    with _own_lock:
        return _own_virtual[port] > 0 and re.fullmatch(re.escape(port) + r"(-\d+)?", client) is not None


def find_port(names: list[str], wanted: str) -> str | None:
    """The first of ``names`` containing ``wanted`` (case-insensitive), skipping our own
    virtual ports; None if there is none. How ``open_output`` and ``open_input`` choose."""
    return _find(names, wanted)


def _find(names: list[str], wanted: str) -> str | None:
    hits = [n for n in names if wanted.lower() in n.lower() and not _is_own(n)]
    if len(hits) > 1:
        logger.info("%d ports match %r, taking the first: %s", len(hits), wanted, ", ".join(hits))
    return hits[0] if hits else None


def _ports(cls: type, api: str | None) -> list[str]:
    """Names of the ports an rtmidi ``cls`` could connect to (a throwaway client). On JACK a
    ctypes client: python-rtmidi deletes its client holding the GIL, and under load
    jack_client_close has waited on the server for over a minute (the whole process with it);
    ctypes lets the GIL go, so the bounded close holds."""
    if _rtapi(api) == rtmidi.API_UNIX_JACK:
        try:
            probe = _JackWatch("rvae-probe")
        except OSError as err:
            raise UserError(f"cannot open a MIDI client with {api}: {err}") from err
        try:
            return probe.ports(flags=_JACK_IS_INPUT if cls is rtmidi.MidiOut else _JACK_IS_OUTPUT)
        finally:
            close_bounded(probe.close, "the port probe client")
    rt = _new_rt(cls, api, "rvae-probe")
    try:
        return rt.get_ports()
    finally:
        close_bounded(rt.delete, "the port probe client")


def _attach(rt: rtmidi.MidiOut | rtmidi.MidiIn, name: str, target: str | None, side: str) -> tuple[str, bool]:
    """Connect ``rt`` to ``target``, or (None) open a virtual port ``name``.
    Returns (the target's full name or our port's name, virtual)."""
    try:
        if target is not None:
            names = rt.get_ports()
            if target not in names:
                raise UserError(f"MIDI port {target!r} went away while we opened it")
            rt.open_port(names.index(target), side)
            return target, False
        rt.open_virtual_port(name)
    except rtmidi.RtMidiError as err:
        raise UserError(f"cannot open MIDI {side}put {name!r}: {err}") from err
    with _own_lock:
        _own_virtual[name] += 1
    return name, True


def _forget(name: str) -> None:
    with _own_lock:
        _own_virtual[name] -= 1
        if _own_virtual[name] <= 0:
            del _own_virtual[name]


def _new_rt(cls: type, api: str | None, client: str) -> rtmidi.MidiOut | rtmidi.MidiIn:
    rtapi = _rtapi(api)  # UserError for a bad name, before touching any MIDI system
    try:
        with quiet_stderr():  # ALSA prints its own lines when it has no sequencer: we say why once
            return cls(rtapi=rtapi, name=client)
    except rtmidi.RtMidiError as err:
        raise UserError(f"cannot open a MIDI client with {api or 'rtmidi default API'}: {err}") from err


# --- JACK server watch -------------------------------------------------------------------

_JackShutdown = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_JACK_NO_START_SERVER = 0x01
_JACK_IS_INPUT, _JACK_IS_OUTPUT = 0x1, 0x2  # JackPortFlags


class _JackWatch:
    """A JACK client without ports whose only job is the server's shutdown callback.
    rtmidi registers none, and after the server dies its sends block forever (see the
    module docstring). libjack calls ``on_shutdown`` on its own thread; we set a flag."""

    def __init__(self, client_name: str, on_shutdown: Callable[[], None] = lambda: None) -> None:
        self.gone = False
        self._client = None
        self._on_shutdown = on_shutdown
        self._lib = _libjack()
        self._callback = _JackShutdown(self._shutdown)  # kept alive as long as the client
        status = ctypes.c_int(0)
        client = self._lib.jack_client_open(client_name.encode()[:60], _JACK_NO_START_SERVER, ctypes.byref(status))
        if not client:
            raise OSError(f"jack_client_open failed (status 0x{status.value:x})")
        self._lib.jack_on_shutdown(client, self._callback, None)
        self._client = client

    def _shutdown(self, _arg) -> None:
        self.gone = True
        self._client = None  # the server is gone: jack_client_close would only fail (tried: -1)
        self._on_shutdown()

    def period(self) -> float:
        """Seconds per JACK cycle (0.0 once the server is gone)."""
        client = self._client
        if not client:
            return 0.0
        rate = self._lib.jack_get_sample_rate(client)
        return self._lib.jack_get_buffer_size(client) / rate if rate else 0.0

    def cycle(self) -> int:
        """The frame at which the server's current cycle began: it moves once a cycle while
        the server runs (the engine's shared counter: our client need not be active)."""
        client = self._client
        return _LAST_FRAME_TIME(client) if client and _LAST_FRAME_TIME is not None else -1

    def ports(self, pattern: str | None = None, flags: int = 0) -> list[str]:
        """Full names of the JACK MIDI ports matching the regular expression ``pattern`` with
        these flags (``_JACK_IS_INPUT``: destinations), in the order rtmidi lists them."""
        client = self._client
        return (
            _names(self._lib, self._lib.jack_get_ports(client, pattern and pattern.encode(), b"midi", flags))
            if client
            else []
        )

    def destinations(self) -> list[str]:
        """The MIDI ports we could send to (JACK inputs), as ``open_output`` would list them."""
        return self.ports(flags=_JACK_IS_INPUT)

    def sources(self) -> list[str]:
        """The MIDI ports we could receive from (JACK outputs)."""
        return self.ports(flags=_JACK_IS_OUTPUT)

    def connections(self, port: str) -> list[str]:
        """Full names of the ports ``port`` (a full name) is connected to."""
        client = self._client
        handle = self._lib.jack_port_by_name(client, port.encode()) if client else None
        return _names(self._lib, self._lib.jack_port_get_all_connections(client, handle)) if handle else []

    def connect(self, source: str, destination: str) -> bool:
        """Connect two ports by full name; True if they are connected now."""
        if not self._client:
            return False
        err = self._lib.jack_connect(self._client, source.encode(), destination.encode())
        return err in (0, errno.EEXIST)

    def close(self) -> None:
        client, self._client = self._client, None
        if client:
            self._lib.jack_client_close(client)


def _names(lib: ctypes.CDLL, names) -> list[str]:
    """A NULL-terminated array of names from libjack -> a list, the array freed."""
    if not names:
        return []
    try:
        found = []
        for name in names:
            if name is None:
                break
            found.append(name.decode(errors="replace"))
        return found
    finally:
        lib.jack_free(names)


JackClient = _JackWatch  # what the rig uses it for: ports, connections, connect


def jack_client(name: str) -> _JackWatch | None:
    """A port-less ctypes JACK client (see _JackWatch), or None when no server answers."""
    try:
        return _JackWatch(name)
    except OSError:
        return None


_LIBJACK: ctypes.CDLL | None = None
_LAST_FRAME_TIME: Callable[[int], int] | None = None  # jack_last_frame_time, keeping the GIL


def _libjack() -> ctypes.CDLL:
    """libjack through ctypes, its signatures declared once (calls through it let the GIL go)."""
    global _LIBJACK
    if _LIBJACK is None:
        lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
        lib.jack_client_open.restype = ctypes.c_void_p
        lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
        lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _JackShutdown, ctypes.c_void_p]
        lib.jack_client_close.argtypes = [ctypes.c_void_p]
        for fn in ("jack_get_buffer_size", "jack_get_sample_rate"):
            getattr(lib, fn).argtypes = [ctypes.c_void_p]
            getattr(lib, fn).restype = ctypes.c_uint32
        lib.jack_get_ports.restype = ctypes.POINTER(ctypes.c_char_p)
        lib.jack_get_ports.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong]
        lib.jack_free.argtypes = [ctypes.c_void_p]
        lib.jack_port_by_name.restype = ctypes.c_void_p
        lib.jack_port_by_name.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        lib.jack_port_get_all_connections.restype = ctypes.POINTER(ctypes.c_char_p)
        lib.jack_port_get_all_connections.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.jack_connect.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        # Read on the clock thread before every send: a lock-free read of shared memory, so
        # through PyDLL, which keeps the GIL (CDLL would let it go and wait to get it back).
        global _LAST_FRAME_TIME
        _LAST_FRAME_TIME = ctypes.PyDLL(lib._name).jack_last_frame_time
        _LAST_FRAME_TIME.argtypes, _LAST_FRAME_TIME.restype = [ctypes.c_void_p], ctypes.c_uint32
        _LIBJACK = lib
    return _LIBJACK


# --- output ------------------------------------------------------------------------------


class OutputPort:
    """A guarded MIDI output (in the style of mido's BaseOutput): it owns the port, is a
    context manager, remembers the notes it left sounding and silences them on ``panic``
    and ``close``. One thread sends; see the module docstring for threads and failures."""

    def __init__(self, rt: rtmidi.MidiOut, name: str, channel: int = 9, virtual: bool = False) -> None:
        self._rt = rt
        self.name = name  # our virtual port's name, or the full name of the port we feed
        self.channel = channel  # 0-based: 9 is General MIDI drums (channel 10)
        self.virtual = virtual
        self.wanted = name  # the name asked for, matched against the ports (open_output: the user's)
        self.api = _RTMIDI_TO_OURS.get(rt.get_current_api(), str(rt.get_current_api()))
        self._sounding: set[tuple[int, int]] = set()  # (channel, note) we sent note_on for
        self._channels: set[int] = {channel}  # every channel a message went out on
        self._lost = False
        self._closed = False
        self._watch: _JackWatch | None = None
        self._cycle = -1  # the server's cycle at the last send (JACK)...
        self._queued = 0  # ...and the bytes sent since it began
        self._dropped = 0  # messages dropped while the server stalled
        self._owed: set[tuple[int, int]] = set()  # their note-offs: sent once it runs again
        if rt.get_current_api() == rtmidi.API_UNIX_JACK:
            me = weakref.ref(self)  # the watch must not keep an unclosed port alive

            def gone() -> None:
                port = me()
                if port is not None:
                    port._mark_lost("JACK server shut down")

            try:
                # a name of its own: jack2 clients of one name opening at once on two servers collide
                self._watch = _JackWatch(f"rvae-watch-{os.getpid()}", gone)
            except OSError as err:  # not fatal: we only lose the early warning
                logger.warning("cannot watch the JACK server (%s); if it dies, sends may hang", err)
        # a port left open at interpreter exit must not get libjack's callback afterwards
        self._finalizer = weakref.finalize(self, _close_watch, self._watch)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "lost" if self._lost else "open"
        kind = "virtual" if self.virtual else "connected to"
        return f"<OutputPort {kind} {self.name!r} ({self.api}) {state}>"

    @property
    def lost(self) -> bool:
        """The port failed (or its JACK server went away); sends are no-ops since."""
        return self._lost

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def lead(self) -> float:
        """Seconds to send ahead so that events land on time: half a JACK period on JACK,
        whose rtmidi port holds every message to the next cycle's start (see Player.lead);
        nothing elsewhere, as ALSA and the others deliver at once."""
        return self._watch.period() / 2 if self._watch is not None else 0.0

    @property
    def sounding(self) -> frozenset[tuple[int, int]]:
        """(channel, note) pairs switched on and not yet off."""
        return frozenset(self._sounding)

    def send(self, msg: mido.Message) -> None:
        """Send one message; never raises for a failing port (it becomes ``lost``)."""
        if self._lost or self._closed:
            return
        data = msg.bytes()
        if self._watch is not None and not self._room(len(data)):
            self._dropped += 1
            if msg.type == "note_off" or (msg.type == "note_on" and msg.velocity == 0):
                self._owed.add((msg.channel, msg.note))
            return
        try:
            self._rt.send_message(data)
        except (rtmidi.RtMidiError, OSError, RuntimeError) as err:
            self._mark_lost(str(err))
            return
        # bookkeeping after the send, so a note that never left is not "sounding"
        kind = msg.type
        if kind == "note_on" and msg.velocity > 0:
            self._sounding.add((msg.channel, msg.note))
            self._channels.add(msg.channel)
        elif kind in ("note_on", "note_off"):
            self._sounding.discard((msg.channel, msg.note))
        elif kind in ("control_change", "program_change"):
            self._channels.add(msg.channel)

    def _room(self, size: int) -> bool:
        """Whether a message of ``size`` bytes may go to rtmidi's JACK queue now: not once
        QUEUE_BYTES wait for a cycle that does not come (the server stalled or frozen), which
        would end in rtmidi spinning forever. When the server runs again, the note-offs
        dropped meanwhile go first."""
        assert self._watch is not None
        cycle = self._watch.cycle()
        if cycle != self._cycle:
            self._cycle, self._queued = cycle, 0
            if self._dropped:
                dropped, owed, self._dropped, self._owed = self._dropped, self._owed, 0, set()
                logger.warning(
                    "MIDI output %r: the JACK server runs again; %d messages were dropped while it stalled",
                    self.name,
                    dropped,
                )
                for ch, note in sorted(owed & self._sounding):
                    self.send(mido.Message("note_off", channel=ch, note=note, velocity=0))
        if self._queued + size + 4 > QUEUE_BYTES:
            if not self._dropped:
                logger.warning(
                    "MIDI output %r: the JACK server has stalled (no cycle ran for %d bytes of MIDI); "
                    "dropping what is sent until it runs again",
                    self.name,
                    self._queued,
                )
            return False
        self._queued += size + 4
        return True

    def panic(self, sound_off: bool = False) -> None:
        """Note-off for every sounding note, then All Notes Off (CC 123) on every channel
        used; ``sound_off`` adds All Sound Off (CC 120), which also cuts release tails."""
        for ch, note in sorted(self._sounding):
            self.send(mido.Message("note_off", channel=ch, note=note, velocity=0))
        self._sounding.clear()
        for ch in sorted(self._channels):
            self.send(mido.Message("control_change", channel=ch, control=ALL_NOTES_OFF, value=0))
            if sound_off:
                self.send(mido.Message("control_change", channel=ch, control=ALL_SOUND_OFF, value=0))

    def close(self) -> None:
        """Panic, then close the port; on JACK it first waits four process cycles so the
        note-offs leave (about 11 ms at 128 frames, 48 kHz). Idempotent."""
        if self._closed:
            return
        if not self._lost:
            self.panic()
            self._let_jack_drain()
        self._closed = True
        try:
            self._rt.close_port()
            self._rt.delete()
        finally:
            if self.virtual:
                _forget(self.name)
            self._finalizer()  # closes the watch client

    def __enter__(self) -> OutputPort:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _let_jack_drain(self) -> None:
        # rtmidi's JACK close waits for one process cycle, but that cycle may already have
        # drained the queue before the last writes, and what it drained is read by the
        # receiving client only in its own (maybe the next) cycle. Measured on a loaded
        # machine: the note-offs of close() were lost in 4 runs of 12. A few cycles more.
        if self._watch is not None:
            time.sleep(min(0.25, 4 * (self._watch.period() or 0.01)))

    def _mark_lost(self, why: str) -> None:
        if not self._lost:
            self._lost = True
            self._sounding.clear()  # nothing can switch them off any more
            logger.warning("MIDI output %r lost (%s): sends are dropped from now on", self.name, why)


def _close_watch(watch: _JackWatch | None, timeout: float = 1.0) -> None:
    if watch is not None:
        close_bounded(watch.close, "the JACK watch client", timeout)


def close_bounded(close: Callable[[], None], what: str, timeout: float = 1.0) -> None:
    """Close a helper client, waiting at most ``timeout``. jack_client_close has blocked forever
    in libjack (jack2 1.9.21, the machine loaded: 4 closes of the watch in about 60 of `rvae
    perform` with CC in, and once the port probe in a test; jack2 issues #395 and #955 report
    the like). A watch or a probe must never keep the performer or `rvae ports` from exiting."""
    closing = threading.Thread(target=close, name="rvae-jack-close", daemon=True)
    try:
        closing.start()
    except RuntimeError:  # at interpreter shutdown (a port left open): no new threads
        close()
        return
    closing.join(timeout)
    if closing.is_alive():
        logger.warning("closing %s took over %g s; going on without waiting", what, timeout)


def open_output(
    name: str = "rvae", api: str | None = None, channel: int = 9, among: list[str] | None = None
) -> OutputPort:
    """The first existing output whose name contains ``name`` (case-insensitive), else a
    virtual port ``name`` (JACK: ``name:name``). ``channel`` (0-based) is the one panic
    always clears. ``among``: the destinations to choose from, listed already (the rig's
    client does, after a restart): no probe client. Raises UserError for an unknown ``api``
    or a port that cannot open."""
    target = _find(_ports(rtmidi.MidiOut, api) if among is None else among, name)
    # a virtual port is a client of its own name; our end of a connection is "rvae:out"
    rt = _new_rt(rtmidi.MidiOut, api, name if target is None else "rvae")
    try:
        port, virtual = _attach(rt, name, target, "out")
    except UserError:
        rt.delete()
        raise
    out = OutputPort(rt, port, channel, virtual)
    out.wanted = name
    logger.info("MIDI out: %s %r (%s)", "virtual port" if virtual else "connected to", port, out.api)
    return out


# --- input -------------------------------------------------------------------------------


class Arrival:
    """When a message arrived, on perf_counter's clock, from the input's own timestamps
    (``timed`` inputs). rtmidi gives each message the time since the one before on the MIDI
    system's clock (JACK: jack_get_time as its cycle is read), so their running sum is exact
    whatever Python's callback waited for the GIL; the sum's origin on perf_counter's clock
    is the smallest lag of any message (stamp - sum: one delivered at once). The origin may
    creep later by CREEP a second, so a lost delta or a drifting clock heals. Never later
    than the stamp itself."""

    CREEP = 0.001  # seconds per second

    def __init__(self) -> None:
        self.sum: float | None = None
        self.origin = 0.0
        self.last = 0.0

    def __call__(self, delta: float, stamp: float) -> float:
        if self.sum is None:
            self.sum, self.origin = 0.0, stamp
        else:
            self.sum += max(0.0, delta)
            self.origin = min(self.origin + self.CREEP * (stamp - self.last), stamp - self.sum)
        self.last = stamp
        return self.sum + self.origin


class InputPort:
    """A MIDI input that hands ``callback(msg, stamp)`` every message, stamped with
    ``time.perf_counter()`` as soon as rtmidi delivers it (rtmidi's own deltas are not
    reliable: python-rtmidi issue #204). Clock, Start, Continue, Stop and Song Position
    come through; SysEx and Active Sensing are dropped.

    ``timed``: the stamp is the input's own time of arrival (``Arrival``), not the time
    Python got round to the callback; every message then passes through rtmidi, so that
    none of its deltas is lost, and SysEx and Active Sensing are dropped here."""

    def __init__(
        self, rt: rtmidi.MidiIn, callback: InputCallback, name: str = "", virtual: bool = False, timed: bool = False
    ) -> None:
        self._rt = rt
        self.name = name  # our virtual port's name, or the full name of the port we listen to
        self.virtual = virtual
        self.wanted = name  # the name asked for (open_input: the user's)
        self.api = _RTMIDI_TO_OURS.get(rt.get_current_api(), str(rt.get_current_api()))
        self._callback = callback
        self._closed = False
        self._errors = 0  # callback exceptions, the first one logged
        self._arrival = Arrival() if timed else None
        # rtmidi drops timing messages by default; a clock follower needs them
        rt.ignore_types(sysex=not timed, timing=False, active_sense=not timed)
        rt.set_callback(self._on_message)

    def __repr__(self) -> str:
        kind = "virtual" if self.virtual else "connected to"
        return f"<InputPort {kind} {self.name!r} ({self.api}){' closed' if self._closed else ''}>"

    @property
    def closed(self) -> bool:
        return self._closed

    def _on_message(self, event: tuple[list[int], float], _data: object) -> None:
        stamp = time.perf_counter()  # first: everything after this is our own latency
        if self._closed:
            return
        if self._arrival is not None:
            stamp = self._arrival(event[1], stamp)
            if event[0] and event[0][0] in (0xF0, 0xF7, 0xFE):  # SysEx, its end, Active Sensing
                return
        try:
            msg = mido.Message.from_bytes(event[0])
        except ValueError:
            return  # a malformed or unsupported message: nothing to follow
        try:
            self._callback(msg, stamp)
        except Exception:
            self._errors += 1
            if self._errors == 1:
                logger.exception("MIDI input %r: the callback raised (later errors are counted)", self.name)

    @property
    def callback_errors(self) -> int:
        return self._errors

    def close(self) -> None:
        """Stop the callback and close the port. Idempotent.

        rtmidi calls the callback on its own thread (JACK's process thread), which first waits
        for the GIL; python-rtmidi cancels, closes and deletes holding the GIL. Closed while a
        message was arriving, that thread went on with a callback ``cancel_callback`` had freed
        (SIGSEGV), or the close waited for the server while the server waited for that thread
        (a hang): closing inputs under a 2 kHz clock beside a busy thread, 3 runs in 4 died.
        So: the callback off in rtmidi, its (callback, data) tuple kept alive, the GIL let go
        for a few cycles so a callback already waiting runs (and returns: closed), then close."""
        if self._closed:
            return
        self._closed = True
        try:
            self._keep = gc.get_referents(self._rt)  # python-rtmidi's callback tuple, freed by cancel_callback
            self._rt.cancel_callback()
            time.sleep(_SETTLE)
            self._rt.close_port()
            self._rt.delete()
        finally:
            if self.virtual:
                _forget(self.name)

    def __enter__(self) -> InputPort:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_input(
    name: str, api: str | None, callback: InputCallback, timed: bool = False, among: list[str] | None = None
) -> InputPort:
    """The first existing input whose name contains ``name`` (case-insensitive), else a
    virtual port ``name`` (JACK: ``name:name``); ``callback(msg, stamp)`` gets every
    message on rtmidi's thread (``timed``: see InputPort); ``among``: the sources listed
    already (see open_output). Raises UserError for an unknown ``api`` or a port that cannot open."""
    target = _find(_ports(rtmidi.MidiIn, api) if among is None else among, name)
    rt = _new_rt(rtmidi.MidiIn, api, name if target is None else "rvae")
    inp = InputPort(rt, callback, timed=timed)  # filters and callback before the port opens: nothing slips by
    inp.wanted = name
    try:
        inp.name, inp.virtual = _attach(rt, name, target, "in")
    except UserError:
        rt.delete()
        raise
    logger.info("MIDI in: %s %r (%s)", "virtual port" if inp.virtual else "connected to", inp.name, inp.api)
    return inp


# --- whichever opens -------------------------------------------------------------------------


@contextlib.contextmanager
def quiet_stderr():
    """Silence what C libraries (ALSA, libjack, SDL) print while we probe for devices: their
    failures are reported once, in our own words."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def on_any_api(action: Callable[[str | None], T], failed: str) -> tuple[T | None, str]:
    """``action(api)`` on whichever API works: rtmidi's default (on Linux ALSA, even without an
    ALSA sequencer), then JACK. Returns its result, or None and one sentence starting with
    ``failed`` saying why each API failed. What ``perform`` and ``ports`` do without --midi-api."""
    reasons = []
    for api in (None, "jack"):
        saved = os.environ.get("JACK_NO_START_SERVER")
        os.environ["JACK_NO_START_SERVER"] = "1"  # trying JACK must not launch a server of its own
        try:
            with quiet_stderr():
                return action(api), ""
        except Exception as e:  # rtmidi raises its own error types for a missing backend
            reasons.append(
                f"{api or 'default'}: {str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}"
            )
        finally:
            if saved is None:
                os.environ.pop("JACK_NO_START_SERVER", None)
            else:
                os.environ["JACK_NO_START_SERVER"] = saved
    return None, f"{failed} ({'; '.join(reasons)})"


def open_output_any(name: str = "rvae", channel: int = 9) -> tuple[OutputPort | None, str]:
    """An output on whichever API opens (``on_any_api``). Returns the port, or None and one
    sentence saying why none could open (so a performer can play on without)."""
    port, why = on_any_api(lambda api: open_output(name, api, channel=channel), "no MIDI out port could open")
    if port is None:
        why += "; start a JACK server (e.g. jackd -d dummy, or your audio setup) or load ALSA's sequencer (snd-seq)"
    return port, why


def available_apis() -> list[str]:
    """Our names of the MIDI APIs this machine's python-rtmidi has compiled in."""
    return _available()
