"""What the performer asks for, from any source: keys and mouse (ui), OSC, MIDI CC.

``ControlState`` is an immutable snapshot; ``Controls`` holds the latest one. Writers
(the window, the OSC server thread, the MIDI input callback) only replace values; readers
(the decode worker, the clock thread, the display) take the snapshot when they need it.

The pad's square, [-extent, extent]^2, is part of the snapshot: everything that maps a
0..1 or 0..127 range or a pixel onto the latent plane (``/wek/outputs``, ``/wek/inputs``,
CC, the window and its map, the arrows' and ``/rvae/xy``'s clamps) reads it from there, so
``Controls.set_extent`` is the one call that moves them all (a model swapped in at runtime).

OSC in (``OscServer``, 127.0.0.1:12000 by default, where Wekinator sends its outputs):

==========================  =================================================================
``/wek/outputs x y``        Wekinator outputs, 0..1 each -> z in the pad's square, y up
``/rvae/xy x y``            the cursor in latent units, inside the pad's square
``/rvae/threshold t``       0..1
``/rvae/noise n``           n >= 0 latent units; negative is rejected
``/rvae/mute i [on]``       kit class i, from 1 as keys 1-9 and --mute: one argument toggles, a second 0/1 sets
``/rvae/density i d``       kit class i (from 1) plays denser (d > 0) or sparser (d < 0), -1..1; 0 = the model's own
``/rvae/start``             run (internal clock)
``/rvae/stop``              stop
``/rvae/panic``             note-offs and All Notes Off now
``/rvae/tempo bpm``         20..300; outside is rejected (a clamped wrong tempo is still wrong)
``/rvae/microtiming pct``   0..100 -> 0..1
``/rvae/velocity m [v]``    ``fixed`` (optionally at velocity v, 1..127) or ``decoded``
``/rvae/swap m``            ``tick``, ``beat`` or ``bar``
``/rvae/learn [bars]``      learn the last ``bars`` played (1..16; 0 ignored), or those since the last learn
``/rvae/undo``              back to the model before the last learn
``/rvae/find``              the cursor to the last bar played
==========================  =================================================================

Start, stop, panic, undo and find also take one number, as buttons send (TouchOSC: 1 on press, 0 on
release): non-zero acts, zero is ignored. Numbers may be ints or floats; NaN and infinity
are rejected, and so is a value outside its range, on every address, as the command line
refuses it: clamped, ``/rvae/threshold 5`` would silence the show without a word. A message
that breaks these rules, a pattern address (``/rvae/*``) and an unknown address are ignored
and logged at most once per address per second (``LOG_INTERVAL``); what came meanwhile is
said within about a second more, the latest message with how many were held: a sender that
repeats a bad message 100 times a second must not flood the log of a live show, and a
problem that starts later must still be seen.

OSC out (``OscCursorOut``, to Wekinator's input port 6448): ``/wek/inputs x y``, the inverse
of ``/wek/outputs``, so a gesture model can be trained against where the cursor is.

MIDI CC in (``CCMap``): two controllers move the cursor's x and y; nine consecutive ones
(``cc_density``, the first) set the density of instruments 1-9, 64 = the model's own.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import mido
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from performer.sequencer import SWAP_MODES
from rvae.errors import UserError
from rvae.latent import MAP_EXTENT

__all__ = [
    "DENSITY_CCS",
    "DENSITY_RANGE",
    "TEMPO_RANGE",
    "VELOCITY_MODES",
    "CCMap",
    "ControlState",
    "Controls",
    "OscCursorOut",
    "OscServer",
    "parse_host_port",
]

logger = logging.getLogger(__name__)

VELOCITY_MODES = ("decoded", "fixed")
LEARN_HELD = 16  # bars a learn can reach back (performer.learn.HELD)
TEMPO_RANGE = (20.0, 300.0)  # BPM the internal clock takes: --bpm, /rvae/tempo and the keys
DENSITY_RANGE = (-1.0, 1.0)  # an instrument's density offset; 0 = the model's own threshold
DENSITY_CCS = 9  # --cc-density FIRST: controllers FIRST..FIRST+8 for instruments 1-9


@dataclass(frozen=True)
class ControlState:
    z: tuple[float, float] = (0.0, 0.0)  # cursor in the latent plane
    threshold: float = 0.5  # onset probability that makes a hit
    noise: float = 0.0  # random jitter of z each bar, in latent units (R-VAE's noise range)
    velocity: str = "decoded"  # "decoded", or "fixed" at fixed_velocity
    fixed_velocity: int = 100
    microtiming: float = 1.0  # 0 = exactly on the grid, 1 = as decoded
    mutes: frozenset[int] = field(default_factory=frozenset)  # kit classes silenced
    density: tuple[float, ...] = ()  # per kit class, -1..1 (decoder.instrument_thresholds); missing = 0
    extent: float = MAP_EXTENT  # the pad spans [-extent, extent]^2 (the model's ckpt.extent, or --extent)
    swap: str = "bar"  # when a new pattern takes over: tick, beat or bar
    bpm: float = 120.0  # internal clock tempo
    running: bool = True  # start / stop
    panic: int = 0  # raised by one for every panic request
    learn: int = 0  # raised by one for every learn request (learning on stage, performer.learn)...
    learn_bars: int = 0  # ...for the last this many bars played; 0: those since the last learn
    undo: int = 0  # raised by one for every undo (back to the model before the last learn)
    find: int = 0  # raised by one for every find (the cursor to the last bar played)


class Controls:
    """The latest ControlState; ``version`` grows with every change, so a reader can tell
    cheaply whether anything moved."""

    def __init__(self, initial: ControlState | None = None) -> None:
        self._lock = threading.Lock()
        self._state = initial or ControlState()
        self.version = 0

    def get(self) -> ControlState:
        return self._state  # replaced whole, never mutated: reading needs no lock

    def update(self, **changes) -> ControlState:
        with self._lock:
            self._state = dataclasses.replace(self._state, **changes)
            self.version += 1
            return self._state

    def toggle_mute(self, instrument: int) -> ControlState:
        with self._lock:
            mutes = self._state.mutes ^ {instrument}
            self._state = dataclasses.replace(self._state, mutes=frozenset(mutes))
            self.version += 1
            return self._state

    def request_panic(self) -> ControlState:
        with self._lock:
            self._state = dataclasses.replace(self._state, panic=self._state.panic + 1)
            self.version += 1
            return self._state

    def request(self, counter: str, **values: Any) -> ControlState:
        """Raise a request counter (``learn``, ``undo``, ``find``) by one, with its values."""
        with self._lock:
            changes = {counter: getattr(self._state, counter) + 1, **values}
            self._state = dataclasses.replace(self._state, **changes)
            self.version += 1
            return self._state

    # The two below read and write under one lock: done as get() then update() by a caller,
    # a concurrent writer's change in between (the mouse moving y while a CC moves x) is lost.

    def set_mute(self, instrument: int, on: bool) -> ControlState:
        """Mute (``on``) or unmute one kit class."""
        with self._lock:
            mutes = self._state.mutes | {instrument} if on else self._state.mutes - {instrument}
            self._state = dataclasses.replace(self._state, mutes=frozenset(mutes))
            self.version += 1
            return self._state

    def set_density(self, instrument: int, value: float) -> ControlState:
        """Set one kit class's density offset (-1..1), keeping the others."""
        with self._lock:
            d = list(self._state.density)
            d += [0.0] * (instrument + 1 - len(d))
            d[instrument] = float(value)
            self._state = dataclasses.replace(self._state, density=tuple(d))
            self.version += 1
            return self._state

    def set_extent(self, extent: float) -> ControlState:
        """The pad's new square, [-extent, extent]^2 (a new model's ``ckpt.extent``): the cursor
        is kept, moved inside the square if it falls outside."""
        e = _check_extent(extent)
        with self._lock:
            z = tuple(_clamp(v, -e, e) for v in self._state.z)
            self._state = dataclasses.replace(self._state, extent=e, z=(z[0], z[1]))
            self.version += 1
            return self._state

    def move_axis(self, axis: int, value: float) -> ControlState:
        """Set one coordinate of the cursor (0 = x, 1 = y), keeping the other."""
        with self._lock:
            z = list(self._state.z)
            z[axis] = float(value)
            self._state = dataclasses.replace(self._state, z=(z[0], z[1]))
            self.version += 1
            return self._state


# --- helpers -------------------------------------------------------------------------------


class _Once:
    """Log a warning the first time a key is seen, then stay quiet about it."""

    def __init__(self) -> None:
        self._seen: set[Any] = set()
        self._lock = threading.Lock()

    def warn(self, key: Any, msg: str, *args: Any, exc_info: bool = False) -> None:
        with self._lock:
            if key in self._seen:
                return
            self._seen.add(key)
        logger.warning(msg, *args, exc_info=exc_info)


class _Every:
    """Log a warning at most once per key per ``interval`` seconds. What was held back is
    not lost: the next line, or ``flush`` once the interval has passed (the server calls it
    whenever it wakes), repeats the latest held message with how many were held."""

    def __init__(self, interval: float, now: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.now = interval, now
        self._last: dict[Any, float] = {}
        self._held: dict[Any, tuple[int, str, tuple[Any, ...]]] = {}  # key -> (count, latest msg, args)
        self._lock = threading.Lock()

    def warn(self, key: Any, msg: str, *args: Any) -> None:
        t = self.now()
        with self._lock:
            if t - self._last.get(key, -math.inf) < self.interval:
                held = self._held.get(key, (0, msg, args))[0]
                self._held[key] = (held + 1, msg, args)
                return
            self._last[key] = t
            held = self._held.pop(key, (0, msg, args))[0]
        self._log(held, msg, args)

    def flush(self, everything: bool = False) -> None:
        """Say what was held for keys whose interval has passed (``everything``: all of them)."""
        t = self.now()
        with self._lock:
            due = [k for k in self._held if everything or t - self._last[k] >= self.interval]
            lines = [self._held.pop(k) for k in due]
            self._last.update(dict.fromkeys(due, t))
        for held, msg, args in lines:
            self._log(held - 1, msg, args)  # the latest is said itself

    def _log(self, held: int, msg: str, args: tuple[Any, ...]) -> None:
        if held:
            msg += f" ({held} more like it in the last {self.interval:g} s not logged)"
        logger.warning(msg, *args)


class _Malformed(ValueError):
    """A message the server ignores; the text says why."""


def _check_extent(extent: float) -> float:
    if not (isinstance(extent, int | float) and math.isfinite(extent) and extent > 0):
        raise ValueError(f"extent must be a positive number of latent units, not {extent!r}")
    return float(extent)


def _clamp(x: float, lo: float, hi: float) -> float:
    return min(max(x, lo), hi)


def _within(v: Any, lo: float, hi: float, what: str, where: str = "") -> float:
    """A number in [lo, hi], else refused: the sender's mistake, said, not clamped into place."""
    x = _number(v)
    if not lo <= x <= hi:
        raise _Malformed(f"{what} must be {lo:g}..{hi:g}{where}, got {x:g}")
    return x


def _number(v: Any) -> float:
    # bool is an int to Python, but an OSC True/False is not a fader value
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise _Malformed(f"expected a number, got {v!r}")
    x = float(v)
    if not math.isfinite(x):
        raise _Malformed(f"expected a finite number, got {v!r}")
    return x


def _integer(v: Any) -> int:
    x = _number(v)  # controllers such as TouchOSC send every number as a float: 2.0 is fine
    if x != int(x):
        raise _Malformed(f"expected a whole number, got {v!r}")
    return int(x)


def _word(v: Any, choices: tuple[str, ...]) -> str:
    if not isinstance(v, str) or v.lower() not in choices:
        raise _Malformed(f"expected one of {', '.join(choices)}, got {v!r}")
    return v.lower()


def _arity(args: tuple, lo: int, hi: int | None = None) -> None:
    hi = lo if hi is None else hi
    if not lo <= len(args) <= hi:
        want = str(lo) if lo == hi else f"{lo} to {hi}"
        raise _Malformed(f"expected {want} argument{'s' if hi != 1 else ''}, got {len(args)}")


def _pressed(args: tuple) -> bool:
    """A trigger: no argument, or a button's state (non-zero = pressed, zero = released)."""
    _arity(args, 0, 1)
    if not args:
        return True
    v = args[0]
    return bool(v) if isinstance(v, bool) else _number(v) != 0.0


# --- OSC in --------------------------------------------------------------------------------


def _make_dispatcher() -> Dispatcher:
    # python-osc sleeps in the server thread until a bundle's time tag unless told not to
    # (its issue #110: a sender with a clock ahead of ours held every message back until
    # memory ran out). We want the latest value now, whatever the tag says.
    if "strict_timing" in inspect.signature(Dispatcher).parameters:
        return Dispatcher(strict_timing=False)
    return Dispatcher()  # older python-osc: bundles with future time tags are delayed


class _UDPServer(BlockingOSCUDPServer):
    """python-osc's blocking server, with request errors logged instead of printed to stderr."""

    once: _Once

    def handle_error(self, request: Any, client_address: Any) -> None:
        # socketserver's default prints a traceback per bad packet; handlers catch their own
        # errors, so this is for the unforeseen (a parser bug), logged once with its traceback
        self.once.warn(("error",), "OSC: an incoming packet raised an error; ignored", exc_info=True)


def _wake(server: _UDPServer) -> None:
    """Send the server an empty datagram, so that a loop waiting for one looks at its stop flag."""
    host, port = server.server_address[:2]
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"  # a wildcard bind is reachable on loopback
    elif host == "::":
        host = "::1"
    try:
        with socket.socket(server.address_family, socket.SOCK_DGRAM) as s:
            s.sendto(b"", (host, port))
    except OSError:
        logger.debug("OSC: could not wake the server; it stops within %.1f s", OscServer.WAKE_INTERVAL)


class OscServer:
    """Listen for OSC on ``host:port`` and write what arrives into ``controls``.

    One daemon thread runs python-osc's blocking server: handlers are a few comparisons and
    one ``controls`` update, so a thread per packet (``ThreadingOSCUDPServer``) would only
    cost more and could apply an older value after a newer one.

    >>> with OscServer(controls, port=0) as osc:   # port=0: any free port, see osc.port
    ...     ...

    ``start`` binds (raising OSError that names host:port if it cannot) and starts the
    thread; ``stop`` ends the loop, joins and closes the socket; both are idempotent.

    Not socketserver's ``serve_forever``/``shutdown``: its loop looks for a shutdown request
    only every poll interval, so stop waits up to that interval (0.5 s by default) unless the
    idle thread is made to wake, and take the GIL, many times a second. Here the loop sleeps in ``handle_request``
    until a datagram arrives, and ``stop`` sends one (empty, so python-osc drops it) to wake
    it at once; ``WAKE_INTERVAL`` is only the fallback should that datagram be lost.
    ``instruments`` (the kit's class count), when given, bounds the /rvae/mute index.
    """

    WAKE_INTERVAL = 0.5  # the idle loop's fallback wake-up: stop's worst case if its wake-up datagram is lost
    LOG_INTERVAL = 1.0  # seconds between two log lines about one address

    def __init__(
        self,
        controls: Controls,
        host: str = "127.0.0.1",
        port: int = 12000,
        *,
        instruments: int | None = None,
    ) -> None:
        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise UserError(f"OSC port must be 0..65535, not {port!r}")
        self.controls, self.host = controls, host
        self.instruments = instruments
        self._requested_port = port
        self._once = _Once()  # the unforeseen: an error with its traceback, once
        self._log = _Every(self.LOG_INTERVAL)  # a sender's mistakes, per address
        self._lock = threading.Lock()  # start/stop may be called from different threads
        self._server: _UDPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.dispatcher = _make_dispatcher()
        handlers: dict[str, Callable[..., None]] = {
            "/wek/outputs": self._wek_outputs,
            "/rvae/xy": self._xy,
            "/rvae/threshold": self._threshold,
            "/rvae/noise": self._noise,
            "/rvae/mute": self._mute,
            "/rvae/density": self._density,
            "/rvae/start": self._start,
            "/rvae/stop": self._stop,
            "/rvae/panic": self._panic,
            "/rvae/tempo": self._tempo,
            "/rvae/microtiming": self._microtiming,
            "/rvae/velocity": self._velocity,
            "/rvae/swap": self._swap,
            "/rvae/learn": self._learn,
            "/rvae/undo": self._undo,
            "/rvae/find": self._find,
        }
        self.addresses = tuple(handlers)
        for address, handler in handlers.items():
            self.dispatcher.map(address, self._guarded(address, handler))
        self.dispatcher.set_default_handler(self._unknown)

    # lifecycle

    @property
    def port(self) -> int:
        """The bound port while running (the one port=0 picked), else the requested one."""
        server = self._server
        return server.server_address[1] if server is not None else self._requested_port

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> OscServer:
        with self._lock:
            if self._server is not None:
                return self
            try:
                server = _UDPServer((self.host, self._requested_port), self.dispatcher)
            except OSError as e:
                # one sentence the app can print as is; errno kept for callers that branch on it
                err = OSError(f"cannot listen for OSC on {self.host}:{self._requested_port}: {e.strerror or e}")
                err.errno = e.errno
                raise err from e
            server.once = self._once
            server.timeout = self.WAKE_INTERVAL
            self._server = server
            self._stopping = threading.Event()  # a fresh one per run: start after stop works
            self._thread = threading.Thread(
                target=self._serve, args=(server, self._stopping), name="osc-server", daemon=True
            )
            self._thread.start()
            logger.debug("OSC: listening on %s:%d", self.host, self.port)
            return self

    def _serve(self, server: _UDPServer, stopping: threading.Event) -> None:
        try:
            while not stopping.is_set():
                server.handle_request()  # one datagram, or WAKE_INTERVAL of silence
                self._log.flush()
        except Exception:  # the socket failing under us: say so, don't die with a bare traceback
            logger.exception("OSC: the server on %s:%d stopped", self.host, server.server_address[1])

    def stop(self, timeout: float = 1.0) -> None:
        with self._lock:
            server, thread, stopping = self._server, self._thread, self._stopping
            self._server = self._thread = None
        if server is None or thread is None:
            return
        stopping.set()
        _wake(server)
        thread.join(timeout)
        server.server_close()  # after the join: closing a socket another thread is selecting on is undefined
        self._log.flush(everything=True)

    def __enter__(self) -> OscServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # dispatch

    def _guarded(self, address: str, handler: Callable[..., None]) -> Callable[..., None]:
        def on_message(incoming: str, *args: Any) -> None:
            if incoming != address:
                # python-osc fans a pattern address out to every match: "/rvae/*" would start,
                # stop and panic at once. Exact addresses only.
                self._log.warn(incoming, "OSC: ignoring pattern address %s (send exact addresses)", incoming)
                return
            try:
                handler(*args)
            except Exception as e:  # never raise in the server thread: one bad sender, one log line
                self._log.warn(address, "OSC: ignoring %s %s: %s", address, list(args), e)

        return on_message

    def _unknown(self, address: str, *args: Any) -> None:
        self._log.warn(address, "OSC: ignoring unknown address %s (known: %s)", address, ", ".join(self.addresses))

    # handlers: validate, then write the latest value, nothing else

    def _wek_outputs(self, *args: Any) -> None:
        _arity(args, 2)
        # Wekinator's regression outputs overshoot their training range unless its outputs are
        # limited to 0..1: refused, the cursor stays where the last good pair put it
        x, y = (_within(v, 0.0, 1.0, "each output", " (limit Wekinator's outputs to 0..1)") for v in args)
        e = self.controls.get().extent
        self.controls.update(z=((2.0 * x - 1.0) * e, (2.0 * y - 1.0) * e))  # y = 1 is the top

    def _xy(self, *args: Any) -> None:
        _arity(args, 2)
        e = self.controls.get().extent
        x, y = (_within(v, -e, e, "x and y", f" (the pad's square, ±{e:g})") for v in args)
        self.controls.update(z=(x, y))

    def _threshold(self, *args: Any) -> None:
        _arity(args, 1)
        self.controls.update(threshold=_within(args[0], 0.0, 1.0, "threshold"))

    def _noise(self, *args: Any) -> None:
        _arity(args, 1)
        n = _number(args[0])
        if n < 0:
            raise _Malformed(f"noise must be >= 0, got {n}")
        self.controls.update(noise=n)

    def _instrument(self, v: Any) -> int:
        """An instrument counted from 1, as the keys and --mute count -> its kit class."""
        i = _integer(v) - 1
        if i < 0 or (self.instruments is not None and i >= self.instruments):
            top = "" if self.instruments is None else f"..{self.instruments}"
            raise _Malformed(f"instrument must be 1{top}, got {i + 1}")
        return i

    def _mute(self, *args: Any) -> None:
        _arity(args, 1, 2)
        i = self._instrument(args[0])
        if len(args) == 1:
            self.controls.toggle_mute(i)
            return
        on = args[1]
        if isinstance(on, bool):
            self.controls.set_mute(i, on)
            return
        v = _number(on)
        if v not in (0.0, 1.0):
            raise _Malformed(f"mute state must be 0 or 1, got {on!r}")
        self.controls.set_mute(i, v == 1.0)

    def _density(self, *args: Any) -> None:
        _arity(args, 2)
        self.controls.set_density(self._instrument(args[0]), _within(args[1], *DENSITY_RANGE, "density"))

    def _start(self, *args: Any) -> None:
        if _pressed(args):
            self.controls.update(running=True)

    def _stop(self, *args: Any) -> None:
        if _pressed(args):
            self.controls.update(running=False)

    def _panic(self, *args: Any) -> None:
        if _pressed(args):
            self.controls.request_panic()

    def _tempo(self, *args: Any) -> None:
        _arity(args, 1)
        self.controls.update(bpm=_within(args[0], *TEMPO_RANGE, "tempo", " BPM"))

    def _microtiming(self, *args: Any) -> None:
        _arity(args, 1)
        self.controls.update(microtiming=_within(args[0], 0.0, 100.0, "microtiming", " percent") / 100.0)

    def _velocity(self, *args: Any) -> None:
        _arity(args, 1, 2)
        mode = _word(args[0], VELOCITY_MODES)
        if len(args) == 1:
            self.controls.update(velocity=mode)
            return
        if mode != "fixed":
            raise _Malformed("only 'fixed' takes a velocity")
        v = _integer(args[1])
        if not 1 <= v <= 127:
            raise _Malformed(f"velocity must be 1..127, got {v}")
        self.controls.update(velocity=mode, fixed_velocity=v)

    def _swap(self, *args: Any) -> None:
        _arity(args, 1)
        self.controls.update(swap=_word(args[0], SWAP_MODES))

    def _learn(self, *args: Any) -> None:
        _arity(args, 0, 1)
        bars = _integer(args[0]) if args else 0
        if args and bars == 0:
            return  # a button's release
        if args and not 1 <= bars <= LEARN_HELD:
            raise _Malformed(f"bars must be 1..{LEARN_HELD} (the bars held), got {bars}")
        self.controls.request("learn", learn_bars=bars)

    def _undo(self, *args: Any) -> None:
        if _pressed(args):
            self.controls.request("undo")

    def _find(self, *args: Any) -> None:
        if _pressed(args):
            self.controls.request("find")


# --- OSC out -------------------------------------------------------------------------------


def parse_host_port(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``"HOST:PORT"`` -> (host, port). ``"[::1]:6448"`` for IPv6; ``"6448"`` or ``":6448"``
    means ``default_host``. Raises UserError with a sentence a CLI can print."""
    s = text.strip()
    host, sep, port_text = s.rpartition(":")
    if not sep:
        host, port_text = "", s
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise UserError(f"cannot read {text!r} as HOST:PORT: write an IPv6 host in brackets, e.g. [::1]:6448")
    try:
        port = int(port_text)
    except ValueError:
        raise UserError(f"cannot read {text!r} as HOST:PORT: the port must be a number, e.g. 127.0.0.1:6448") from None
    if not 1 <= port <= 65535:
        raise UserError(f"cannot read {text!r} as HOST:PORT: the port must be 1..65535")
    return host or default_host, port


class OscCursorOut:
    """Send the cursor as ``/wek/inputs x y`` (0..1 each, y up), as R-VAE does, so a
    Wekinator gesture model can be trained against it.

    Called from the UI's frame loop, so ``send_cursor`` is cheap (the host is resolved once
    here, not per datagram; the socket never blocks) and never raises: a send that fails is
    logged once per kind of failure and dropped. Not deduplicated on purpose: Wekinator
    records one example per incoming input, and a still cursor is still an input.
    """

    ADDRESS = "/wek/inputs"

    def __init__(self, host: str = "127.0.0.1", port: int = 6448) -> None:
        try:
            family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except (OSError, OverflowError, TypeError) as e:
            raise OSError(f"cannot send OSC to {host}:{port}: {getattr(e, 'strerror', None) or e}") from e
        self.host, self.port = host, port
        self._client = SimpleUDPClient(str(sockaddr[0]), port, family=family)
        self._once = _Once()

    def send_cursor(self, z: tuple[float, float] | Any, extent: float) -> None:
        """``/wek/inputs``: z in the pad's square [-extent, extent]^2 as 0..1 each."""
        try:
            zx, zy, e = float(z[0]), float(z[1]), float(extent)
            if not (math.isfinite(zx) and math.isfinite(zy) and math.isfinite(e) and e > 0):
                self._once.warn("value", "OSC out: not sending cursor %r with extent %r", z, extent)
                return
            x = _clamp((zx / e + 1.0) / 2.0, 0.0, 1.0)
            y = _clamp((zy / e + 1.0) / 2.0, 0.0, 1.0)
            self._client.send_message(self.ADDRESS, [x, y])
        except OSError as e:  # full buffer (non-blocking socket), network down, closed socket
            self._once.warn(
                ("send", type(e).__name__, e.errno),
                "OSC out: cannot send to %s:%d: %s (further failures like this are not logged)",
                self.host,
                self.port,
                e,
            )
        except Exception as e:  # a malformed z: the show goes on
            self._once.warn(("error", type(e).__name__), "OSC out: cannot send cursor %r: %s", z, e)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> OscCursorOut:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- MIDI CC in ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CCMap:
    """Two MIDI controllers move the cursor: CC value 0..127 -> -extent..+extent on its axis
    (127 = right / top; the extent the controls hold), keeping the other axis. Nine consecutive controllers from
    ``cc_density`` set the density of instruments 1-9: 0 -> -1, 64 -> 0 (the model's own, a
    knob's centre detent), 127 -> +1. ``channel`` None listens on every channel.

    ``handle`` runs on the rtmidi input callback thread: it only writes into ``controls``.
    Note that 64 is not the exact centre (a 7-bit controller has none): it maps to +extent/127.
    """

    cc_x: int | None
    cc_y: int | None
    channel: int | None = None  # 0..15 as mido counts, None = any
    cc_density: int | None = None  # the first of DENSITY_CCS controllers, instrument 1's

    def __post_init__(self) -> None:
        for name in ("cc_x", "cc_y"):
            cc = getattr(self, name)
            if cc is not None and not (isinstance(cc, int) and not isinstance(cc, bool) and 0 <= cc <= 127):
                raise ValueError(f"{name} must be a MIDI controller number 0..127, not {cc!r}")
        if self.cc_x is not None and self.cc_x == self.cc_y:
            raise ValueError(f"cc_x and cc_y are both controller {self.cc_x}: give each axis its own")
        first = self.cc_density
        if first is not None:
            if not (isinstance(first, int) and not isinstance(first, bool) and 0 <= first <= 128 - DENSITY_CCS):
                raise ValueError(f"cc_density must be 0..{128 - DENSITY_CCS} (nine controllers from it), not {first!r}")
            taken = [cc for cc in (self.cc_x, self.cc_y) if cc is not None and first <= cc < first + DENSITY_CCS]
            if taken:
                raise ValueError(
                    f"cc_density {first}..{first + DENSITY_CCS - 1} includes controller {taken[0]}, a cursor axis's"
                )
        if self.channel is not None and not (isinstance(self.channel, int) and 0 <= self.channel <= 15):
            raise ValueError(f"channel must be 0..15 (mido counts from 0) or None for any, not {self.channel!r}")

    def handle(self, msg: mido.Message, controls: Controls) -> bool:
        """Move the cursor or set a density if ``msg`` is one of our controllers; True if it was."""
        if msg.type != "control_change" or (self.channel is not None and msg.channel != self.channel):
            return False
        if self.cc_density is not None and 0 <= msg.control - self.cc_density < DENSITY_CCS:
            v = msg.value - 64
            controls.set_density(msg.control - self.cc_density, v / 63.0 if v > 0 else v / 64.0)
            return True
        if msg.control == self.cc_x:
            axis = 0
        elif msg.control == self.cc_y:
            axis = 1
        else:
            return False
        controls.move_axis(axis, (msg.value / 127.0 * 2.0 - 1.0) * controls.get().extent)
        return True
