"""A timed JACK MIDI capture that survives the server's restart, for the rig's soak and tests.

    with RestartCapture("cap") as cap:      # a JACK input cap:in, in a process of its own
        connect(perf.port, cap.port)
        ...                                  # the JACK server killed and started again
    result = cap.close()

Like ``performer.testing.TimedCapture`` (same stamps: the start of the JACK cycle that carried
each event, on perf_counter's clock), but when the server dies the capture notes when, polls
every few milliseconds for a server to answer, and opens ``NAME:in`` again under the same name,
so a performer that remembers its connections reconnects it. Nothing is hidden: ``close()``
returns {"events": [[start_s, frame, [bytes], session]...], "sessions": [{"opened": t,
"lost": t or None, "cycles": n, "missed_cycles": n}...]}: one session per server lifetime, the
time between one's "lost" and the next's "opened" is the gap with no data.
"""

from __future__ import annotations

import ctypes
import json
import signal
import sys
import threading
import time

from performer.testing import TimedCapture, _jack_lib, _MidiEvent, _Process, _Shutdown

__all__ = ["RestartCapture"]

REOPEN_POLL = 0.005  # seconds between tries while the server is away: the gap's resolution


class RestartCapture(TimedCapture):
    """See the module docstring. ``port`` is the full name of the capture's input."""

    COMMAND = ("-m", "performer.rig_capture")
    STOP_TIMEOUT = 10.0

    def __init__(self, name: str = "rvae-restart-cap") -> None:
        super().__init__(name)


def _capture(name: str, out_path: str) -> None:
    """The capturing process: record, across server restarts, until SIGINT; then write JSON."""
    lib = _jack_lib()
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGINT)  # PR_SET_PDEATHSIG: end with the parent
    events: list = []
    sessions: list[dict] = []
    gone = threading.Event()
    ev, frames, start, nxt, period_us = (
        _MidiEvent(),
        ctypes.c_uint32(),
        ctypes.c_uint64(),
        ctypes.c_uint64(),
        ctypes.c_float(),
    )
    out = tuple(ctypes.byref(x) for x in (frames, start, nxt, period_us))
    current: dict = {}  # this server lifetime's client, port and counters

    def process(nframes: int, _arg) -> int:
        now, now_raw = time.perf_counter(), lib.jack_get_time()
        s, client = current["session"], current["client"]
        s["cycles"] += 1
        if lib.jack_get_cycle_times(client, *out) != 0:
            s["missed_cycles"] += 1
            return 0
        began = now - (now_raw - start.value) / 1e6
        if current["last"] >= 0 and frames.value - current["last"] != nframes:
            s["missed_cycles"] += (frames.value - current["last"]) // nframes - 1
        current["last"] = frames.value
        buf = lib.jack_port_get_buffer(current["port"], nframes)
        for i in range(lib.jack_midi_get_event_count(buf)):
            if lib.jack_midi_event_get(ctypes.byref(ev), buf, i) == 0:
                events.append((began, frames.value + ev.time, list(ctypes.string_at(ev.buffer, ev.size)), s["n"]))
        return 0

    def shutdown(_arg) -> None:
        current["session"]["lost"] = time.perf_counter()
        gone.set()

    callbacks = (_Process(process), _Shutdown(shutdown))  # alive as long as any client
    interrupted = False
    client = None
    while not interrupted:
        status = ctypes.c_int(0)
        client = lib.jack_client_open(name.encode(), 0x03, ctypes.byref(status))  # NoStartServer | UseExactName
        if not client:
            interrupted = signal.sigtimedwait({signal.SIGINT, signal.SIGTERM}, REOPEN_POLL) is not None
            continue
        session = {"n": len(sessions), "opened": time.perf_counter(), "lost": None, "cycles": 0, "missed_cycles": 0}
        sessions.append(session)
        current.update(session=session, client=client, last=-1)
        current["port"] = lib.jack_port_register(client, b"in", b"8 bit raw midi", 0x1, 0)
        gone.clear()
        lib.jack_on_shutdown(client, callbacks[1], None)
        lib.jack_set_process_callback(client, callbacks[0], None)
        lib.jack_activate(client)
        while not gone.is_set():
            if signal.sigtimedwait({signal.SIGINT, signal.SIGTERM}, 0.05) is not None:
                interrupted = True
                break
        if gone.is_set():
            client = None  # its server is gone: closing would only wait on it
    if client:
        lib.jack_deactivate(client)
        lib.jack_client_close(client)
    with open(out_path, "w") as f:
        json.dump({"events": events, "sessions": sessions}, f)


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # for sigtimedwait
    _capture(sys.argv[1], sys.argv[2])
