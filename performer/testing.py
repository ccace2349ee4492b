"""A real JACK MIDI rig, for the tests and the benchmark (as ``numpy.testing`` is numpy's):
a dummy-driver server, port lookup and connection, a recording input, JACK's own MIDI clock
source driven by its transport, a capture that stamps events on perf_counter's clock, and
the performer itself run as a user runs it. It needs JACK's programs (Debian packages
jackd2, jack-midi-clock); a missing one raises ``Unavailable`` (the tests skip, saying so).

    from performer.testing import MidiClock, Recorder, Transport, connect

    def test_x(jack_server):  # the fixture (tests/conftest.py) runs jack_server() per session
        with Recorder("rec") as rec, MidiClock(bpm=120) as clock, Transport() as tp:
            connect(clock.port, "rec:rec")
            tp.play()
            assert rec.wait_count(24, "clock")

Each test session (or benchmark run) starts its own server (``jackd -n rvae-test-<pid> -d
dummy -r 48000 -p 128``) and points ``JACK_DEFAULT_SERVER`` at it for the whole process, so rtmidi,
``jack_lsp``, ``jack_connect``, ``jack_midi_clock`` and ``jack_transport`` all talk to
it: sessions of several engineers on one machine then share neither ports nor the
transport (which is global to a server), and stopping ours cannot pull a server from
under anyone else. ``JACK_NO_START_SERVER`` stops libjack from auto-starting another.

Separate servers are not enough, though: jack2 (1.9.21) names a client's socket after
the client and the user, not the server, so two clients of the same name opening at the
same moment on two servers collide ("Cannot bind server to socket", jack_client_open
status 0x21). Measured: two processes churning same-named clients on two servers failed
6 times in 200; with different names, never. jack_lsp, jack_connect, jack_midi_clock and
jack_transport have fixed names, so JACK test sessions take turns: ``jack_server`` holds a
machine-wide lock (``LOCK_PATH``) from starting jackd until it has stopped.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import fcntl
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

import mido

from performer.ports import open_input

__all__ = [
    "JACKD_ARGS",
    "LOCK_PATH",
    "UNSEEN_GROOVE",
    "GrooveSender",
    "MidiClock",
    "MidiDump",
    "Performer",
    "Recorder",
    "TimedCapture",
    "Transport",
    "Unavailable",
    "connect",
    "connections",
    "find_port",
    "jack_server",
    "need",
    "need_jack",
    "remove_semaphores",
    "restart_jack",
    "wait_for_port",
]

JACKD_ARGS = ["-d", "dummy", "-r", "48000", "-p", "128"]  # DESIGN.md: no sound card needed
START_TIMEOUT = 10.0
LOCK_PATH = os.path.join(tempfile.gettempdir(), "rvae-jack-tests.lock")
LOCK_TIMEOUT = 300.0  # another session's JACK tests take seconds; minutes means it is stuck


class Unavailable(RuntimeError):
    """A program the rig needs is not installed (the message names its Debian package)."""


def need(tool: str, package: str = "jackd2") -> None:
    if shutil.which(tool) is None:
        raise Unavailable(f"{tool} is not installed (Debian package {package})")


def need_jack() -> None:
    """The JACK server and the tools every rig uses are installed (else Unavailable)."""
    for tool in ("jackd", "jack_lsp", "jack_connect"):
        need(tool)


def _jack_tool(*args: str, timeout: float = 20.0, check: bool = True) -> subprocess.CompletedProcess:
    # 20 s: with the machine loaded (load average 8 on 2 cores) jack_lsp once took over 5
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=check)


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 5.0) -> None:
    """Stop one process we started, by its pid: ``sig``, then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)


def take_turn(lock_file: IO, what: str, timeout: float = LOCK_TIMEOUT) -> None:
    """Wait for a machine-wide lock held on ``lock_file`` by another test session (JACK, Link)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"another {what} session has held {lock_file.name} for {timeout:.0f} s") from None
            time.sleep(0.1)


def remove_semaphores(server: str) -> None:
    """A server that stops (or dies) while clients are attached cannot remove their
    semaphores from /dev/shm; the server name is ours alone, so these files are too."""
    for leftover in glob.glob(f"/dev/shm/jack_sem.*_{glob.escape(server)}_*"):
        os.unlink(leftover)


@contextlib.contextmanager
def jack_server(name: str, sync: bool = False) -> Iterator[str]:
    """A JACK server (dummy driver) called ``name``, this process pointed at it, in our turn
    (see the module docstring); stopped on the way out. Yields its name.

    ``sync`` (``jackd -S``): each cycle waits for every client. By default (asynchronous, as
    a user's server runs) a client that is late for a cycle skips it, and the MIDI in it is
    lost to that client: under load, a Python callback waiting for its process's GIL (the
    performer's MIDI input, a Python recorder) lost pulses and notes. Tests that count
    pulses and notes run synchronous; the benchmark measures time as users have it."""
    need_jack()
    with open(LOCK_PATH, "a") as lock_file:  # closing it releases the lock
        take_turn(lock_file, "JACK")
        yield from _serve(name, ["-S"] if sync else [])


_SERVERS: dict[str, tuple[subprocess.Popen, list[str], IO]] = {}  # our running servers: process, options, log


def _start_jackd(name: str, options: list[str], log: IO, again: bool = True) -> None:
    proc = subprocess.Popen(
        ["jackd", "-n", name, *options, *JACKD_ARGS], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
    )
    _SERVERS[name] = proc, options, log
    deadline = time.monotonic() + START_TIMEOUT
    while _jack_tool("jack_lsp", check=False).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            said = log.read()
            if again and "Too many servers already active" in said and free_server_slots():
                return _start_jackd(name, options, log, again=False)
            raise RuntimeError(f"jackd -n {name} {' '.join(options + JACKD_ARGS)} did not come up:\n{said}")
        time.sleep(0.05)


SHM_REGISTRY = "/dev/shm/jack-shm-registry"


def free_server_slots() -> bool:
    """Free JACK's server slots when no jackd runs; True if it did. The registry in /dev/shm
    has 8, and a server killed (SIGKILL: the tests that kill one, or a test run killed) keeps
    its slot until a server of the same name starts again; servers named after a process id
    filled it across runs and jackd then refused to start ("Too many servers already
    active"). With no jackd running nothing in the registry is alive: it is removed, and the
    next server makes a new one. Test servers have fixed names (the machine-wide turn makes
    them ours alone), so a slot one leaks is the next one's."""
    for comm in glob.glob("/proc/[0-9]*/comm"):
        with contextlib.suppress(OSError), open(comm) as f:
            if f.read().strip() == "jackd":
                return False
    with contextlib.suppress(FileNotFoundError):
        os.unlink(SHM_REGISTRY)
        return True
    return False


def end_orphans(name: str) -> None:
    """Kill a jackd called ``name`` left by a test run that was itself killed: in our turn
    (take_turn) a server of a test's fixed name is no one else's, and it would keep the new
    one from starting."""
    for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
        with contextlib.suppress(OSError, ValueError):
            with open(cmdline, "rb") as f:
                args = f.read().split(b"\0")
            if os.path.basename(args[0]) == b"jackd" and args[args.index(b"-n") + 1] == name.encode():
                _stop_pid(int(cmdline.split("/")[2]))
    remove_semaphores(name)


def _stop_pid(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):  # not our child: wait for it to be gone from /proc
            if not os.path.exists(f"/proc/{pid}"):
                return
            time.sleep(0.02)


def restart_jack(name: str, down: float = 0.5) -> float:
    """Kill our server ``name`` (SIGKILL, as a crash would end it), wait ``down`` seconds and
    start it again with the same options; returns the perf_counter time it answered again."""
    proc, options, log = _SERVERS[name]
    _stop(proc, signal.SIGKILL)
    remove_semaphores(name)
    time.sleep(down)
    _start_jackd(name, options, log)
    return time.perf_counter()


def server_log(name: str, lines: int = 40) -> str:
    """What our server ``name`` said went wrong (for a failing test's message): its first and
    last ``lines`` lines of errors, XRuns and clients that did not finish a cycle."""
    if name not in _SERVERS:
        return ""
    with open(_SERVERS[name][2].name) as f:
        bad = [ln for ln in f if re.search(r"error|XRun|not finished|timed out|fail", ln, re.IGNORECASE)]
    return "".join(bad if len(bad) <= 2 * lines else [*bad[:lines], "...\n", *bad[-lines:]])


def _serve(name: str, options: list[str]) -> Iterator[str]:
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    log = tempfile.NamedTemporaryFile("w+", prefix="jackd-", suffix=".log", delete=False)
    os.environ["JACK_DEFAULT_SERVER"] = name
    os.environ["JACK_NO_START_SERVER"] = "1"
    try:
        end_orphans(name)
        free_server_slots()  # in our turn, with no jackd running, nothing in the registry is alive
        _start_jackd(name, options, log)
        yield name
    finally:
        if name in _SERVERS:
            _stop(_SERVERS.pop(name)[0])
        remove_semaphores(name)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        log.close()
        os.unlink(log.name)


# --- ports -------------------------------------------------------------------------------


def jack_ports() -> dict[str, set[str]]:
    """Every JACK port -> its flags ({"input", "output", "midi", ...}), from ``jack_lsp -p -t``."""
    ports: dict[str, set[str]] = {}
    current = None
    for line in _jack_tool("jack_lsp", "-p", "-t").stdout.splitlines():
        if not line.startswith(("\t", " ")):
            current = line.strip()
            ports[current] = set()
        elif current is not None and "properties:" in line:
            ports[current] |= {p for p in line.split(":", 1)[1].strip().strip(",").split(",") if p}
        elif current is not None and "midi" in line:
            ports[current].add("midi")
    return ports


def find_port(substring: str, direction: str) -> str:
    """The one JACK MIDI port whose full name contains ``substring`` (case-insensitive)
    and has ``direction`` ("output" = a source, "input" = a destination)."""
    hits = [
        n
        for n, flags in jack_ports().items()
        if substring.lower() in n.lower() and direction in flags and "midi" in flags
    ]
    if len(hits) != 1:
        raise LookupError(f"{len(hits)} JACK MIDI {direction} ports match {substring!r}: {hits}")
    return hits[0]


def wait_for_port(substring: str, direction: str, timeout: float = 5.0) -> str:
    """Poll ``jack_lsp`` until a port appears (a client we just started registers it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return find_port(substring, direction)
        except LookupError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def connect(src_substring: str, dst_substring: str) -> tuple[str, str]:
    """``jack_connect`` the one source matching ``src_substring`` to the one destination
    matching ``dst_substring``; returns their full names."""
    src, dst = find_port(src_substring, "output"), find_port(dst_substring, "input")
    _jack_tool("jack_connect", src, dst)
    return src, dst


def connections(port: str) -> list[str]:
    """Full names of the ports ``port`` is connected to (``jack_lsp -c``)."""
    out, current, found = _jack_tool("jack_lsp", "-c").stdout.splitlines(), None, []
    for line in out:
        if not line.startswith((" ", "\t")):
            current = line.strip()
        elif current == port:
            found.append(line.strip())
    return found


# --- recording ---------------------------------------------------------------------------


class Recorder:
    """A virtual JACK input (through ``performer.ports.open_input``, so clock and
    transport messages come through) that keeps every (stamp, msg) it receives."""

    def __init__(self, name: str = "rvae-rec") -> None:
        self._lock = threading.Lock()
        self._log: list[tuple[float, mido.Message]] = []
        self.port = open_input(name, "jack", self._on_message)
        self.name = name

    def _on_message(self, msg: mido.Message, stamp: float) -> None:
        with self._lock:
            self._log.append((stamp, msg))

    @property
    def log(self) -> list[tuple[float, mido.Message]]:
        with self._lock:
            return list(self._log)

    def messages(self, *types: str) -> list[mido.Message]:
        """What arrived, in order; only these ``types`` ("note_on", "clock"...) if given."""
        return [m for _, m in self.log if not types or m.type in types]

    def count(self, *types: str) -> int:
        return len(self.messages(*types))

    def clear(self) -> None:
        with self._lock:
            self._log.clear()

    def wait_for(self, predicate: Callable[[Recorder], bool], timeout: float = 5.0) -> bool:
        """Poll ``predicate(self)`` until true or ``timeout`` seconds; returns the last answer."""
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if time.monotonic() > deadline:
                return predicate(self)
            time.sleep(0.01)
        return True

    def wait_count(self, n: int, *types: str, timeout: float = 5.0) -> bool:
        return self.wait_for(lambda r: r.count(*types) >= n, timeout)

    def settle(self, quiet: float = 0.2, timeout: float = 5.0) -> None:
        """Wait until nothing new has arrived for ``quiet`` seconds."""
        deadline, seen = time.monotonic() + timeout, -1
        while time.monotonic() < deadline:
            n = len(self.log)
            if n == seen:
                return
            seen = n
            time.sleep(quiet)

    def close(self) -> None:
        self.port.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# --- an external MIDI clock: jack_midi_clock, driven by jack_transport ----------------------


class MidiClock:
    """``jack_midi_clock``: sends 24 clocks per quarter note while the JACK transport
    rolls, Start / Continue / Stop when it changes state. ``force_bpm`` (``-B``) ignores
    any timebase master and plays at ``bpm``; without it a master's tempo wins and Song
    Position is sent, ``resync_delay`` seconds before the Continue (``-d``, default 2 s).
    ``port`` is the full name of its output (``jack_midi_clock:mclk_out``; JACK renames a
    second instance ``jack_midi_clock-01``)."""

    def __init__(
        self, bpm: float = 120.0, force_bpm: bool = True, resync_delay: float | None = None, song_position: bool = True
    ) -> None:
        need("jack_midi_clock", "jack-midi-clock")
        args = ["jack_midi_clock", "-b", f"{bpm:g}"]
        args += ["-B"] if force_bpm else []
        args += ["-d", f"{resync_delay:g}"] if resync_delay is not None else []
        args += [] if song_position else ["-P"]
        before = set(jack_ports())
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5.0
        while True:  # our instance's port: the mclk_out that was not there before
            new = [p for p in set(jack_ports()) - before if p.endswith(":mclk_out")]
            if new:
                self.port = new[0]
                break
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise RuntimeError(f"{' '.join(args)} registered no port")
            time.sleep(0.05)

    def close(self) -> None:
        _stop(self.proc, signal.SIGINT)  # its documented way out (HUP or INT)

    def __enter__(self) -> MidiClock:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Transport:
    """One ``jack_transport`` process fed commands on stdin, so commands take effect
    within a JACK cycle or two and ``master`` holds (the timebase master lives as long as
    the process). The transport is global to the server: closing stops it and rewinds to
    frame 0, so the next test starts from 1|1|0 (and jack_midi_clock sends Start, not
    Continue)."""

    def __init__(self) -> None:
        need("jack_transport")
        self.proc = subprocess.Popen(
            ["jack_transport"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
        )
        self.command("stop")
        self.command("locate 0")

    def command(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def play(self) -> None:
        self.command("play")

    def stop(self) -> None:
        self.command("stop")

    def locate(self, frame: int) -> None:
        """Move to ``frame`` (48000 per second here)."""
        self.command(f"locate {frame}")

    def master(self, bpm: float = 120.0) -> None:
        """Become timebase master (4/4 at ``bpm``), so jack_midi_clock without ``-B``
        follows this tempo and sends Song Position."""
        self.command("master")
        self.command(f"tempo {bpm:g}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.command("stop")
            self.command("locate 0")
            self.command("quit")
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(3.0)
            except subprocess.TimeoutExpired:
                _stop(self.proc)

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class MidiDump:
    """``jack_midi_dump CLIENT``: another program's MIDI input (``CLIENT:input``) that
    prints what it receives, one line per message (``   0: 99 24 64 note on ...``; with
    ``absolute=True`` the first field is a sample-accurate time)."""

    def __init__(self, client: str = "ext-synth", absolute: bool = False) -> None:
        need("jack_midi_dump")
        self._out = tempfile.NamedTemporaryFile("w+", prefix="jack_midi_dump-", suffix=".txt", delete=False)
        args = ["jack_midi_dump", *(["-a"] if absolute else []), client]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self._out, stderr=subprocess.DEVNULL)
        try:
            self.port = wait_for_port(f"{client}:input", "input")
        except LookupError:
            self.close()
            raise

    def lines(self) -> list[str]:
        """The message lines printed so far (it flushes every line)."""
        with open(self._out.name) as f:
            return [ln.strip() for ln in f if ln.strip() and ":" in ln and "Shutting down" not in ln]

    def events(self) -> list[tuple[int, list[int]]]:
        """(frame, message bytes) of what arrived so far, in order. With ``absolute`` the
        frame counts from its start in whole JACK cycles, so ``frame // period`` is the cycle."""
        out = []
        for ln in self.lines():
            frame, _, data = ln.partition(":")
            hexes = []
            for tok in data.split():  # "99 24 64 note on ...": the bytes, then words
                if len(tok) != 2:
                    break
                try:
                    hexes.append(int(tok, 16))
                except ValueError:
                    break
            if frame.strip().isdigit() and hexes:
                out.append((int(frame), hexes))
        return out

    def close(self) -> None:
        _stop(self.proc, signal.SIGINT)
        self._out.close()
        os.unlink(self._out.name)

    def __enter__(self) -> MidiDump:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _MidiEvent(ctypes.Structure):
    _fields_ = [("time", ctypes.c_uint32), ("size", ctypes.c_size_t), ("buffer", ctypes.POINTER(ctypes.c_ubyte))]


_Process = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p)


class TimedCapture:
    """A JACK MIDI input (``NAME:in``) that stamps each event with when its JACK cycle began,
    on the clock of Python's ``time.perf_counter`` (CLOCK_MONOTONIC, one clock for every
    process), so a benchmark can compare what arrived with the times the sender meant.
    jack_midi_dump cannot: its "absolute" stamps count frames from its own start, and the
    dummy driver's frame count wanders against the system clock anyway.

    It runs in a process of its own (``python -m performer.testing capture NAME OUT``) whose
    main thread only waits: its process callback is Python (ctypes takes the GIL each
    cycle), and the JACK server does not wait for a late client; in the benchmark's own
    process, contention for the GIL made it miss cycles, and their events with them.

    The cycle start is JACK's own (``jack_get_cycle_times``, on jack_get_time's clock),
    carried over to perf_counter's clock in the callback, so the time the callback takes
    to start is not counted. ``close()`` returns {"events": [[start_s, frame, [bytes]]...],
    "cycles": n, "missed_cycles": gaps in the frame count, events in them are lost}."""

    COMMAND: tuple[str, ...] = ("-m", "performer.testing", "capture")  # + NAME OUT
    STOP_TIMEOUT = 5.0  # seconds for the child to write its result after SIGINT

    def __init__(self, name: str = "rvae-timed") -> None:
        self._out = tempfile.NamedTemporaryFile("w+", prefix="capture-", suffix=".json", delete=False)
        self._result: dict | None = None
        self.proc = subprocess.Popen(
            [sys.executable, *self.COMMAND, name, self._out.name],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self.port = wait_for_port(f"{name}:in", "input", timeout=10.0)
        except LookupError:
            _, err = self._stop_child()
            raise AssertionError(f"the capture client {name} did not come up: {err}") from None

    def _stop_child(self) -> tuple[int, str]:
        _stop(self.proc, signal.SIGINT, timeout=self.STOP_TIMEOUT)
        assert self.proc.stderr is not None  # a pipe: stderr=PIPE
        with self.proc.stderr as pipe:
            return self.proc.returncode, pipe.read()

    def close(self) -> dict:
        """Stop the capture and return what it heard (again on a second call)."""
        if self._result is None:
            code, err = self._stop_child()
            with open(self._out.name) as f:
                text = f.read()
            self._out.close()
            os.unlink(self._out.name)
            if code != 0 or not text:
                raise AssertionError(f"the capture process failed (exit {code}): {err}")
            self._result = json.loads(text)
        return self._result

    def __enter__(self) -> TimedCapture:
        return self

    def __exit__(self, *exc) -> None:
        if self._result is None:
            try:
                self.close()
            except AssertionError:
                pass  # already failing, or closed by an interrupt: only clean up


_Shutdown = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


def _jack_lib() -> ctypes.CDLL:
    """libjack with the signatures a capture process calls (here and performer.rig_capture)."""
    lib = ctypes.CDLL(ctypes.util.find_library("jack") or "libjack.so.0")
    lib.jack_client_open.restype = ctypes.c_void_p
    lib.jack_client_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.POINTER(ctypes.c_int)]
    lib.jack_port_register.restype = ctypes.c_void_p
    lib.jack_port_register.argtypes = [
        ctypes.c_void_p,
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.c_ulong,
        ctypes.c_ulong,
    ]
    lib.jack_set_process_callback.argtypes = [ctypes.c_void_p, _Process, ctypes.c_void_p]
    lib.jack_on_shutdown.argtypes = [ctypes.c_void_p, _Shutdown, ctypes.c_void_p]
    lib.jack_port_get_buffer.restype = ctypes.c_void_p
    lib.jack_port_get_buffer.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_midi_get_event_count.restype = ctypes.c_uint32
    lib.jack_midi_get_event_count.argtypes = [ctypes.c_void_p]
    lib.jack_midi_event_get.argtypes = [ctypes.POINTER(_MidiEvent), ctypes.c_void_p, ctypes.c_uint32]
    lib.jack_get_time.restype = ctypes.c_uint64
    lib.jack_get_cycle_times.argtypes = [ctypes.c_void_p] * 5
    for fn in ("jack_activate", "jack_deactivate", "jack_client_close"):
        getattr(lib, fn).argtypes = [ctypes.c_void_p]
    return lib


def _capture(name: str, out_path: str) -> None:
    """The capturing process (see TimedCapture): record until SIGINT, then write JSON."""
    lib = _jack_lib()
    # end with the parent, even one killed outright: SIGINT, which sigwait below takes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # 1 = PR_SET_PDEATHSIG
    status = ctypes.c_int(0)
    # 0x01 JackNoStartServer | 0x02 JackUseExactName: never another server, never "NAME-01"
    # (which would leave a stray capture of this name to be measured instead)
    client = lib.jack_client_open(name.encode(), 0x03, ctypes.byref(status))
    if not client:
        raise SystemExit(f"jack_client_open({name}) failed (status 0x{status.value:x})")
    port = lib.jack_port_register(client, b"in", b"8 bit raw midi", 0x1, 0)
    events: list = []
    state = {"cycles": 0, "missed_cycles": 0, "last": -1}  # last: the frame count of the last cycle
    ev, frames, start, nxt, period_us = (
        _MidiEvent(),
        ctypes.c_uint32(),
        ctypes.c_uint64(),
        ctypes.c_uint64(),
        ctypes.c_float(),
    )
    out = tuple(ctypes.byref(x) for x in (frames, start, nxt, period_us))

    def process(nframes: int, _arg) -> int:
        now, now_raw = time.perf_counter(), lib.jack_get_time()
        state["cycles"] += 1
        if lib.jack_get_cycle_times(client, *out) != 0:
            state["missed_cycles"] += 1  # no time for this cycle: its events stay out
            return 0
        began = now - (now_raw - start.value) / 1e6
        if state["last"] >= 0 and frames.value - state["last"] != nframes:
            state["missed_cycles"] += (frames.value - state["last"]) // nframes - 1
        state["last"] = frames.value
        buf = lib.jack_port_get_buffer(port, nframes)
        for i in range(lib.jack_midi_get_event_count(buf)):
            if lib.jack_midi_event_get(ctypes.byref(ev), buf, i) == 0:
                events.append((began, frames.value + ev.time, list(ctypes.string_at(ev.buffer, ev.size))))
        return 0

    callback = _Process(process)
    lib.jack_set_process_callback(client, callback, None)
    lib.jack_activate(client)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})  # the only other thread here waits
    finally:
        lib.jack_deactivate(client)
        lib.jack_client_close(client)
        with open(out_path, "w") as f:
            json.dump({"events": events, "cycles": state["cycles"], "missed_cycles": state["missed_cycles"]}, f)


# --- a drummer following the performer's clock --------------------------------------------------

# A 4/4 bar none of the bundled loops holds, (step at 24 a quarter, note, velocity): kick on 1,
# the "a" of 2 and the "and" of 3; snare on 2 and 4 with a ghost on the "e" of 4; closed hat on
# 8th-note triplets, accented on the beat; a ride bell on the last triplet. Learning's tests and
# benchmark teach it to the bundled model.
UNSEEN_GROOVE = [
    (0, 36, 110),
    (42, 36, 96),
    (60, 36, 100),
    (24, 38, 112),
    (72, 38, 115),
    (78, 38, 40),
    *((p, 42, 100 if p % 24 == 0 else 60) for p in range(0, 96, 8)),
    (88, 51, 90),
]


class GrooveSender:
    """A drummer in a process of its own (``python -m performer.testing send NAME FILE``): a
    virtual JACK input ``NAME-in:NAME-in`` for the performer's MIDI clock and an output
    ``NAME-out:NAME-out`` that plays ``hits`` [(pulse, note, velocity)] after the performer's
    Start, each on its pulse as the pulse arrives (one pulse is one step of a 24-per-quarter
    grid), ``loops`` times over a loop of ``loop`` pulses; each note ends a pulse later.
    Playing on the pulse it hears, each note reaches the performer a JACK cycle or so late."""

    def __init__(self, name: str, hits: list[tuple[int, int, int]], loop: int, loops: int) -> None:
        self._spec = tempfile.NamedTemporaryFile("w", prefix="sender-", suffix=".json", delete=False)
        json.dump({"hits": hits, "loop": loop, "loops": loops}, self._spec)
        self._spec.close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "performer.testing", "send", name, self._spec.name],
            stdin=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            self.clock_in = wait_for_port(f"{name}-in:{name}-in", "input", timeout=10.0)
            self.out = wait_for_port(f"{name}-out:{name}-out", "output", timeout=10.0)
        except LookupError:
            self.close()
            raise

    def close(self) -> None:
        _stop(self.proc, signal.SIGINT)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        os.unlink(self._spec.name)

    def __enter__(self) -> GrooveSender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _send(name: str, spec_path: str) -> None:
    """The sender's process (see GrooveSender): play on the pulses until SIGINT."""
    from performer.ports import open_output

    with open(spec_path) as f:
        spec = json.load(f)
    loop, loops = int(spec["loop"]), int(spec["loops"])
    by_pulse: dict[int, list[tuple[int, int]]] = {}
    for pulse, note, velocity in spec["hits"]:
        by_pulse.setdefault(int(pulse), []).append((int(note), int(velocity)))
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG: end with the test
    out = open_output(f"{name}-out", "jack")
    state: dict = {"pulse": None, "sounding": []}  # None: no Start heard yet, so no place in the loop

    def on_message(msg: mido.Message, _stamp: float) -> None:
        if msg.type == "start":
            state["pulse"] = -1
        elif msg.type == "clock" and state["pulse"] is not None:
            for note in state["sounding"]:
                out.send(mido.Message("note_off", channel=9, note=note, velocity=0))
            state["pulse"] += 1
            n = state["pulse"]
            now = by_pulse.get(n % loop, []) if 0 <= n < loop * loops else []
            for note, velocity in now:
                out.send(mido.Message("note_on", channel=9, note=note, velocity=velocity))
            state["sounding"] = [note for note, _ in now]

    inp = open_input(f"{name}-in", "jack", on_message)
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        inp.close()
        out.close()


# --- the performer itself, as a user runs it ---------------------------------------------------


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Performer:
    """``rvae perform CKPT --headless --midi-api jack --midi-out NAME --microtiming 0 ...`` in a
    subprocess, with OSC on a free port; stopped with SIGTERM, as a service would be. Its
    output goes to a file, not a pipe: a pipe nobody reads fills during a long soak and
    blocks the performer's console thread."""

    def __init__(self, name: str, ckpt: str | os.PathLike, *args: str, window: bool = False, verbose: int = 1) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.name = name
        self.osc_port = free_udp_port()
        cmd = [
            sys.executable,
            "-m",
            "rvae",
            "-" + "v" * verbose,  # -vv: debugging detail too
            "perform",
            str(ckpt),
            *([] if window else ["--headless"]),
            "--midi-api",
            "jack",
            "--midi-out",
            name,
            "--osc-port",
            str(self.osc_port),
            "--microtiming",
            "0",
            *args,
        ]
        self._out = tempfile.TemporaryFile("w+")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if window:  # the real pygame window, drawn offscreen at its 60 frames a second
            env["SDL_VIDEODRIVER"] = "dummy"
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, text=True, env=env)
        try:
            self.port = wait_for_port(f"{name}:{name}", "output", timeout=30.0)
        except LookupError:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"no port {name}: {self.output()}") from None
        self.client = SimpleUDPClient("127.0.0.1", self.osc_port)

    def send(self, address: str, *args) -> None:
        self.client.send_message(address, list(args))

    def output(self) -> str:
        self._out.seek(0)
        return self._out.read()

    def close(self) -> str:
        """SIGTERM, wait, and insist on a clean exit; returns what it printed. One still running
        20 s later prints its threads' stacks (SIGUSR1, as `rvae perform` does) before it is
        killed, and they are in the failure: a hang on the way out is a bug to find."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            time.sleep(1.0)
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"still running 20 s after SIGTERM; what it printed:\n{self.output()}") from None
        out = self.output()
        assert self.proc.returncode == 0, f"exit status {self.proc.returncode} (negative: killed by that signal)\n{out}"
        return out

    def __enter__(self) -> Performer:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._out.close()


if __name__ == "__main__" and sys.argv[1:2] == ["capture"]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # for sigwait
    _capture(sys.argv[2], sys.argv[3])
elif __name__ == "__main__" and sys.argv[1:2] == ["send"]:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # for sigwait
    _send(sys.argv[2], sys.argv[3])
