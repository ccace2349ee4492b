"""Controls and its writers: OSC in over real UDP, the cursor out to Wekinator, MIDI CC.

Negative checks ("this message changed nothing") cannot poll for an absence, so each one
sends a sentinel message after the bad one and waits for that: the server is one thread
reading one socket, so when the sentinel has landed the bad message has been handled too.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator

import mido
import pytest
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_server import BlockingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from performer.control import CCMap, Controls, ControlState, OscCursorOut, OscServer, parse_host_port

LOGGER = "performer.control"


def wait_for(predicate: Callable[[], bool], timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.1f} s")
        time.sleep(0.002)


@pytest.fixture
def controls() -> Controls:
    return Controls()


@pytest.fixture
def server(controls: Controls) -> Iterator[OscServer]:
    with OscServer(controls, port=0) as srv:
        yield srv


@pytest.fixture
def client(server: OscServer) -> Iterator[SimpleUDPClient]:
    c = SimpleUDPClient("127.0.0.1", server.port)
    yield c
    c.close()


_sentinel = iter(range(1, 10_000))


def sync(client: SimpleUDPClient, controls: Controls) -> None:
    """Wait until everything sent before has been handled (a fresh noise value round-trips)."""
    n = next(_sentinel) / 8.0  # exact in float32
    client.send_message("/rvae/noise", n)
    wait_for(lambda: controls.get().noise == n)


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING and text in r.getMessage()]


# --- OSC in: each address ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "args", "expect"),
    [
        ("/rvae/xy", [1.5, -0.75], {"z": (1.5, -0.75)}),
        ("/rvae/xy", [3.0, -3.0], {"z": (3.0, -3.0)}),  # the square's corner
        ("/rvae/threshold", 0.25, {"threshold": 0.25}),
        ("/rvae/threshold", 1, {"threshold": 1.0}),
        ("/rvae/noise", 0.5, {"noise": 0.5}),
        ("/rvae/density", [3, 0.5], {"density": (0.0, 0.0, 0.5)}),  # counted from 1, as mute
        ("/rvae/density", [1.0, -1.0], {"density": (-1.0,)}),
        ("/rvae/tempo", 174, {"bpm": 174.0}),
        ("/rvae/tempo", 90.5, {"bpm": 90.5}),
        ("/rvae/microtiming", 50, {"microtiming": 0.5}),
        ("/rvae/microtiming", 0.0, {"microtiming": 0.0}),
        ("/rvae/microtiming", 100, {"microtiming": 1.0}),
        ("/rvae/velocity", "fixed", {"velocity": "fixed", "fixed_velocity": 100}),
        ("/rvae/velocity", ["fixed", 90], {"velocity": "fixed", "fixed_velocity": 90}),
        ("/rvae/swap", "tick", {"swap": "tick"}),
        ("/rvae/swap", "beat", {"swap": "beat"}),
        ("/rvae/stop", None, {"running": False}),
        ("/rvae/stop", 1.0, {"running": False}),  # a TouchOSC button press
        ("/rvae/panic", None, {"panic": 1}),
        ("/wek/outputs", [0.0, 1.0], {"z": (-3.0, 3.0)}),  # left, top: y up
        ("/wek/outputs", [0.75, 0.25], {"z": (1.5, -1.5)}),
        ("/wek/outputs", [0.5, 0.5], {"z": (0.0, 0.0)}),
        ("/wek/outputs", [1.0, 0.0], {"z": (3.0, -3.0)}),
    ],
)
def test_each_address_sets_its_field(controls, client, address, args, expect):
    before = controls.get()
    client.send_message(address, args)
    want = {k: pytest.approx(v) if isinstance(v, float | tuple) else v for k, v in expect.items()}
    wait_for(lambda: {k: getattr(controls.get(), k) for k in want} == want)
    after = controls.get()
    assert dataclasses.replace(after, **{k: getattr(before, k) for k in expect}) == before  # nothing else moved


def test_start_after_stop_and_button_release_is_ignored(controls, client):
    client.send_message("/rvae/stop", None)
    wait_for(lambda: not controls.get().running)
    client.send_message("/rvae/start", 0.0)  # a button's release: nothing
    sync(client, controls)
    assert not controls.get().running
    client.send_message("/rvae/start", True)
    wait_for(lambda: controls.get().running)


def test_mute_toggles_with_one_argument_and_sets_with_two(controls, client):
    # counted from 1 like keys 1-9 and --mute: /rvae/mute 1 is the kick, kit class 0
    client.send_message("/rvae/mute", 1)
    wait_for(lambda: controls.get().mutes == {0})
    client.send_message("/rvae/mute", 1.0)  # TouchOSC sends floats
    wait_for(lambda: controls.get().mutes == frozenset())
    client.send_message("/rvae/mute", [3, 1])
    client.send_message("/rvae/mute", [3, 1])  # setting is idempotent, toggling is not
    client.send_message("/rvae/mute", [5, True])
    wait_for(lambda: controls.get().mutes == {2, 4})
    client.send_message("/rvae/mute", [3, 0.0])
    wait_for(lambda: controls.get().mutes == {4})


def test_panic_counts_every_request(controls, client):
    for _ in range(3):
        client.send_message("/rvae/panic", 1)
    wait_for(lambda: controls.get().panic == 3)


def test_bundle_with_a_future_time_tag_is_applied_now(controls, client):
    # python-osc's strict timing would sleep in the server thread for an hour (its issue #110)
    bundle = OscBundleBuilder(time.time() + 3600)
    msg = OscMessageBuilder("/rvae/threshold")
    msg.add_arg(0.125)
    bundle.add_content(msg.build())
    client.send(bundle.build())
    wait_for(lambda: controls.get().threshold == 0.125)
    sync(client, controls)  # and the server still answers


# --- OSC in: what is ignored ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "args"),
    [
        ("/rvae/xy", [1.0]),  # arg count
        ("/rvae/xy", [1.0, 2.0, 3.0]),
        ("/rvae/xy", ["left", 0.0]),  # type
        ("/rvae/xy", [float("nan"), 0.0]),
        ("/wek/outputs", [float("inf"), 0.5]),
        ("/wek/outputs", [0.5]),
        ("/rvae/threshold", None),
        ("/rvae/threshold", "high"),
        ("/rvae/threshold", True),
        ("/rvae/threshold", 5.0),  # out of range: refused, as generate --threshold 2 is, not clamped into silence
        ("/rvae/threshold", -0.1),
        ("/rvae/xy", [9.0, 0.0]),  # outside the pad's square
        ("/wek/outputs", [1.5, -0.5]),  # a regression's overshoot
        ("/rvae/microtiming", 150),
        ("/rvae/microtiming", -1),
        ("/rvae/noise", -0.5),
        ("/rvae/tempo", 10),  # outside 20..300 is rejected, not clamped
        ("/rvae/tempo", 400.0),
        ("/rvae/tempo", float("nan")),
        ("/rvae/microtiming", b"\x01"),
        ("/rvae/velocity", "loud"),
        ("/rvae/velocity", ["fixed", 200]),
        ("/rvae/velocity", ["decoded", 90]),
        ("/rvae/velocity", 90),
        ("/rvae/swap", "phrase"),
        ("/rvae/swap", 1),
        ("/rvae/mute", None),
        ("/rvae/mute", -1),
        ("/rvae/mute", 0),  # counted from 1
        ("/rvae/mute", 1.5),
        ("/rvae/mute", [1, 2]),
        ("/rvae/mute", [1, "on"]),
        ("/rvae/density", 1),  # which instrument and how much
        ("/rvae/density", [0, 0.5]),
        ("/rvae/density", [1, 1.5]),  # outside -1..1 is refused
        ("/rvae/density", [1, "dense"]),
        ("/rvae/start", [1, 2]),
        ("/rvae/stop", "now"),
        ("/rvae/panic", [1.0, 1.0]),
    ],
)
def test_malformed_messages_are_ignored_and_logged_once(controls, client, caplog, address, args):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    client.send_message("/rvae/tempo", 123.0)  # a known state besides the defaults
    sync(client, controls)
    before, version = controls.get(), controls.version
    for _ in range(3):
        client.send_message(address, args)
    sync(client, controls)
    after = controls.get()
    assert after == ControlState(**{**before.__dict__, "noise": after.noise})
    assert controls.version == version + 1  # only the sentinel wrote
    assert len(warnings_about(caplog, f"ignoring {address} ")) == 1
    client.send_message("/rvae/threshold", 0.375)  # and the server keeps working
    wait_for(lambda: controls.get().threshold == 0.375)


def test_a_refusal_says_why_and_is_logged_at_most_once_a_second_per_address(controls, caplog, monkeypatch):
    monkeypatch.setattr(OscServer, "LOG_INTERVAL", 0.3)  # a second, shortened for the test
    caplog.set_level(logging.WARNING, logger=LOGGER)
    with OscServer(controls, port=0) as srv:
        c = SimpleUDPClient("127.0.0.1", srv.port)
        for _ in range(3):
            c.send_message("/rvae/threshold", 5.0)
            c.send_message("/rvae/xy", [0.0, 9.0])
        sync(c, controls)
        time.sleep(0.35)
        c.send_message("/rvae/threshold", 5.0)  # the same mistake a while later: said again
        sync(c, controls)
        c.close()
    lines = [r.getMessage() for r in warnings_about(caplog, "ignoring /rvae/threshold ")]
    said = "OSC: ignoring /rvae/threshold [5.0]: threshold must be 0..1, got 5"
    assert lines == [said, said + " (2 more like it in the last 0.3 s not logged)"]
    xy = "OSC: ignoring /rvae/xy [0.0, 9.0]: x and y must be -3..3 (the pad's square, ±3), got 9"
    # the two held, though no later /rvae/xy came: the latest said once the interval passed
    assert [r.getMessage() for r in warnings_about(caplog, "ignoring /rvae/xy ")] == [
        xy,
        xy + " (1 more like it in the last 0.3 s not logged)",
    ]
    assert controls.get().threshold == 0.5 and controls.get().z == (0.0, 0.0)


def test_unknown_addresses_are_ignored_and_logged_once_each(controls, client, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    version = controls.version
    for _ in range(3):
        client.send_message("/rvae/nope", 1.0)
        client.send_message("/other/thing", None)
    sync(client, controls)
    assert controls.version == version + 1
    assert len(warnings_about(caplog, "unknown address /rvae/nope")) == 1
    assert len(warnings_about(caplog, "unknown address /other/thing")) == 1


def test_pattern_addresses_do_not_fan_out(controls, client, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    client.send_message("/rvae/*", None)  # would match start, stop and panic at once
    sync(client, controls)
    assert controls.get().running and controls.get().panic == 0
    assert len(warnings_about(caplog, "pattern address /rvae/*")) == 1


def test_garbage_datagrams_do_not_stop_the_server(controls, server, client):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
        for junk in (b"", b"hello", b"/rvae/xy\x00\x00\x00\x00,ff\x00\x01", b"#bundle\x00\xff"):
            raw.sendto(junk, ("127.0.0.1", server.port))
    sync(client, controls)


def test_out_of_range_mute_and_density_with_a_known_kit_size(controls):
    with OscServer(controls, port=0, instruments=4) as srv:
        c = SimpleUDPClient("127.0.0.1", srv.port)
        c.send_message("/rvae/mute", 5)  # a 4-class kit has 1..4
        c.send_message("/rvae/density", [5, 0.5])
        c.send_message("/rvae/mute", 4)
        c.send_message("/rvae/density", [4, 0.25])
        wait_for(lambda: controls.get().mutes == {3} and controls.get().density == (0.0, 0.0, 0.0, 0.25))
        c.close()


# --- OSC in: lifecycle ---------------------------------------------------------------------


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def test_stop_is_prompt_idempotent_and_frees_the_port(controls):
    srv = OscServer(controls, port=0).start()
    port = srv.port
    assert port != 0 and srv.running and not port_is_free(port)
    t = time.monotonic()
    srv.stop()
    assert time.monotonic() - t < 0.2  # woken at once, not at the loop's fallback wake-up
    assert not srv.running and port_is_free(port)
    srv.stop()  # again: nothing to do
    assert srv.start() is srv and srv.running  # restartable
    srv.start()  # already running: nothing to do
    srv.stop()
    assert not any(t.name == "osc-server" and t.is_alive() for t in threading.enumerate())


def test_stop_is_prompt_on_a_wildcard_bind(controls):
    srv = OscServer(controls, host="0.0.0.0", port=0).start()
    c = SimpleUDPClient("127.0.0.1", srv.port)
    c.send_message("/rvae/threshold", 0.25)
    wait_for(lambda: controls.get().threshold == 0.25)
    c.close()
    t = time.monotonic()
    srv.stop()
    assert time.monotonic() - t < 0.2 and not srv.running


def test_bind_failure_names_host_and_port(controls):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        srv = OscServer(controls, port=port)
        with pytest.raises(OSError, match=f"cannot listen for OSC on 127.0.0.1:{port}") as info:
            srv.start()
        assert info.value.errno is not None and not srv.running
        srv.stop()  # never started: harmless


def test_unknown_host_names_host_and_port(controls):
    with pytest.raises(OSError, match=r"cannot listen for OSC on no-such-host\.invalid:12000"):
        OscServer(controls, host="no-such-host.invalid").start()


@pytest.mark.parametrize("kwargs", [{"port": 70000}, {"port": -1}])
def test_bad_constructor_arguments(controls, kwargs):
    with pytest.raises(ValueError):
        OscServer(controls, **kwargs)


def test_the_controls_square_scales_the_cursor_and_moves_at_runtime():
    controls = Controls(ControlState(extent=2.0))
    with OscServer(controls, port=0) as srv:
        c = SimpleUDPClient("127.0.0.1", srv.port)
        c.send_message("/wek/outputs", [1.0, 0.25])
        wait_for(lambda: controls.get().z == (2.0, -1.0))
        c.send_message("/rvae/xy", [-2.0, 1.0])
        wait_for(lambda: controls.get().z == (-2.0, 1.0))
        controls.set_extent(8.0)  # a model with a larger square swapped in
        c.send_message("/wek/outputs", [1.0, 0.25])
        wait_for(lambda: controls.get().z == (8.0, -4.0))
        c.send_message("/rvae/xy", [-7.5, 8.0])  # outside ±2 before, inside ±8 now
        wait_for(lambda: controls.get().z == (-7.5, 8.0))
        c.close()
    assert controls.set_extent(3.0).z == (-3.0, 3.0)  # a smaller one: the cursor kept inside it
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="extent must be a positive number"):
            controls.set_extent(bad)
    assert controls.get().extent == 3.0


# --- OSC out -------------------------------------------------------------------------------


@pytest.fixture
def wekinator() -> Iterator[tuple[int, list[tuple[str, tuple]]]]:
    """A python-osc server standing in for Wekinator's input port; yields (port, received)."""
    received: list[tuple[str, tuple]] = []
    d = Dispatcher()
    d.set_default_handler(lambda address, *args: received.append((address, args)))
    srv = BlockingOSCUDPServer(("127.0.0.1", 0), d)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv.server_address[1], received
    srv.shutdown()
    srv.server_close()
    thread.join(1.0)


def test_cursor_out_sends_wek_inputs(wekinator):
    port, received = wekinator
    with OscCursorOut("127.0.0.1", port) as out:
        for z in [(0.0, 0.0), (3.0, -3.0), (1.5, 0.75), (9.0, -9.0)]:
            out.send_cursor(z, 3.0)
        out.send_cursor((1.0, 1.0), extent=2.0)
        wait_for(lambda: len(received) == 5)
    assert [a for a, _ in received] == ["/wek/inputs"] * 5
    want = [(0.5, 0.5), (1.0, 0.0), (0.75, 0.625), (1.0, 0.0), (0.75, 0.75)]
    assert [args for _, args in received] == [pytest.approx(w) for w in want]


def test_cursor_out_is_the_inverse_of_wek_outputs(controls, server, wekinator):
    port, received = wekinator
    with OscCursorOut("localhost", port) as out:
        out.send_cursor((-1.5, 2.25), 3.0)  # the server's controls: the default square
        wait_for(lambda: len(received) == 1)
    c = SimpleUDPClient("127.0.0.1", server.port)
    c.send_message("/wek/outputs", list(received[0][1]))
    wait_for(lambda: controls.get().z == pytest.approx((-1.5, 2.25)))
    c.close()


def test_cursor_out_never_raises_and_logs_once(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    out = OscCursorOut("127.0.0.1", 9)
    out.send_cursor((float("nan"), 0.0), 3.0)
    out.send_cursor((float("nan"), 0.0), 3.0)
    out.send_cursor((0.0, 0.0), extent=0.0)
    out.send_cursor(None, 3.0)  # type: ignore[arg-type]
    out.close()  # now every send fails
    for _ in range(5):
        out.send_cursor((0.0, 0.0), 3.0)
    assert len(warnings_about(caplog, "not sending cursor")) == 1
    assert len(warnings_about(caplog, "cannot send to 127.0.0.1:9")) == 1
    assert len(warnings_about(caplog, "cannot send cursor None")) == 1


def test_cursor_out_unknown_host_raises_a_sentence():
    with pytest.raises(OSError, match=r"cannot send OSC to no-such-host\.invalid:6448"):
        OscCursorOut("no-such-host.invalid", 6448)


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("127.0.0.1:6448", ("127.0.0.1", 6448)),
        ("localhost:12000", ("localhost", 12000)),
        (" 192.168.1.20:9000 ", ("192.168.1.20", 9000)),
        ("[::1]:6448", ("::1", 6448)),
        ("6448", ("127.0.0.1", 6448)),
        (":6448", ("127.0.0.1", 6448)),
    ],
)
def test_parse_host_port(text, expect):
    assert parse_host_port(text) == expect


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("localhost", "the port must be a number"),
        ("localhost:", "the port must be a number"),
        ("host:port", "the port must be a number"),
        ("host:0", "1..65535"),
        ("host:70000", "1..65535"),
        ("::1:6448", "IPv6 host in brackets"),
    ],
)
def test_parse_host_port_errors(text, why):
    with pytest.raises(ValueError, match=f"cannot read '{text}' as HOST:PORT: .*{why}"):
        parse_host_port(text)


# --- MIDI CC -------------------------------------------------------------------------------


def cc(control: int, value: int, channel: int = 0) -> mido.Message:
    return mido.Message("control_change", control=control, value=value, channel=channel)


def test_cc_map_moves_one_axis_and_keeps_the_other():
    controls = Controls(ControlState(z=(1.0, -1.0)))
    m = CCMap(cc_x=16, cc_y=17)
    assert m.handle(cc(16, 127), controls) and controls.get().z == (3.0, -1.0)
    assert m.handle(cc(17, 0, channel=5), controls) and controls.get().z == (3.0, -3.0)  # any channel
    assert m.handle(cc(17, 127), controls) and controls.get().z == (3.0, 3.0)  # 127 = top
    assert m.handle(cc(16, 64), controls) and controls.get().z[0] == pytest.approx(3.0 / 127)
    version = controls.version
    assert not m.handle(cc(18, 127), controls)
    assert not m.handle(mido.Message("note_on", note=16, velocity=127), controls)
    assert not m.handle(mido.Message("pitchwheel", pitch=8191), controls)
    assert controls.version == version


def test_cc_map_channel_extent_and_a_single_axis():
    controls = Controls(ControlState(extent=2.0))
    m = CCMap(cc_x=None, cc_y=1, channel=9)
    assert not m.handle(cc(1, 127, channel=0), controls)
    assert m.handle(cc(1, 127, channel=9), controls) and controls.get().z == (0.0, 2.0)
    assert not CCMap(None, None).handle(cc(1, 0), controls)


def test_cc_density_sets_nine_instruments_with_64_at_the_models_own():
    controls = Controls()
    m = CCMap(cc_x=16, cc_y=17, cc_density=20)
    assert m.handle(cc(20, 0), controls) and controls.get().density == (-1.0,)
    assert m.handle(cc(28, 127), controls) and controls.get().density == (-1.0, *[0.0] * 7, 1.0)
    assert m.handle(cc(20, 64), controls) and controls.get().density[0] == 0.0  # a knob's centre: the model's own
    assert m.handle(cc(22, 96), controls) and controls.get().density[2] == pytest.approx(32 / 63)
    assert m.handle(cc(16, 127), controls) and controls.get().z == (3.0, 0.0)  # the axes still move
    version = controls.version
    assert not m.handle(cc(19, 0), controls) and not m.handle(cc(29, 0), controls)  # either side of the nine
    assert controls.version == version


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ((128, 1), "cc_x must be a MIDI controller number 0..127"),
        ((1, 2, None, 120), "cc_density must be 0..119"),
        ((1, 25, None, 20), "cc_density 20..28 includes controller 25"),
        ((1, -1), "cc_y must be"),
        ((1.5, 2), "cc_x must be"),
        ((7, 7), "both controller 7"),
        ((1, 2, 16), "channel must be 0..15"),
    ],
)
def test_cc_map_validation(args, why):
    with pytest.raises(ValueError, match=why):
        CCMap(*args)


# --- Controls from several threads ---------------------------------------------------------


def test_controls_from_several_threads():
    controls = Controls()
    n_threads, n = 8, 500
    barrier = threading.Barrier(n_threads)

    def writer(k: int) -> None:
        barrier.wait()  # all at once, to make the writes collide
        for i in range(n):
            controls.update(threshold=(k * n + i) / (n_threads * n))
            controls.toggle_mute(k)  # n (even) toggles: ends unmuted
            controls.request_panic()
            controls.set_mute(100 + k, True)
            controls.move_axis(k % 2, float(k))
            controls.set_density(k, i / n)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5.0)
    st = controls.get()
    assert controls.version == n_threads * n * 6  # no increment lost
    assert st.density == tuple((n - 1) / n for _ in range(n_threads))  # each thread's last, none lost
    assert st.panic == n_threads * n  # no request lost
    assert st.mutes == {100 + k for k in range(n_threads)}  # no toggle lost
    assert st.z[0] in {float(k) for k in range(0, n_threads, 2)}
    assert st.z[1] in {float(k) for k in range(1, n_threads, 2)}
    assert 0.0 <= st.threshold < 1.0 and not math.isnan(st.threshold)
