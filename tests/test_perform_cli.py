"""``rvae perform``'s options, made from PerformConfig's fields, and the user's mistakes it
refuses in one sentence (exit 2) rather than a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from performer.app import PerformConfig
from rvae.cli import build_parser, main
from rvae.errors import UserError

# the options as they were written by hand before PerformConfig made them: same names, same defaults
DEFAULTS = {
    "checkpoint": None,
    "headless": False,
    "clock": "internal",
    "bpm": 120.0,
    "midi_out": "rvae",
    "midi_in": None,
    "midi_api": None,
    "channel": 10,
    "send_clock": None,
    "z": (0.0, 0.0),
    "extent": None,
    "threshold": 0.5,
    "noise": 0.0,
    "velocity": "decoded",
    "microtiming": 100.0,
    "mute": "",
    "swap": "bar",
    "gate": 0.125,
    "osc_host": "127.0.0.1",
    "osc_port": 12000,
    "osc_out": None,
    "cc_x": None,
    "cc_y": None,
    "cc_density": None,
    "record": None,
    "audio": False,
    "seconds": None,
    "force": False,
}


def perform_args(*argv: str) -> dict:
    args = build_parser().parse_args(["perform", *argv])
    return {k: getattr(args, k) for k in DEFAULTS}


def test_the_options_and_their_defaults_are_as_before():
    assert perform_args() == DEFAULTS


def test_each_kind_of_option_parses():
    got = perform_args(
        "m.pt",
        "--headless",
        "--clock",
        "midi",
        "--no-send-clock",
        "--z",
        "1.5",
        "-2",
        "--mute",
        "3,4",
        "--osc-out",
        "--cc-x",
        "20",
        "--seconds",
        "2.5",
    )
    changed = {k: v for k, v in got.items() if v != DEFAULTS[k]}
    assert changed == {
        "checkpoint": "m.pt",
        "headless": True,
        "clock": "midi",
        "send_clock": False,
        "z": [1.5, -2.0],
        "mute": "3,4",
        "osc_out": "127.0.0.1:6448",  # --osc-out alone: Wekinator's input
        "cc_x": 20,
        "seconds": 2.5,
    }
    assert perform_args("--osc-out", "10.0.0.2:9000")["osc_out"] == "10.0.0.2:9000"
    with pytest.raises(SystemExit):
        perform_args("--swap", "phrase")  # choices come from the config's SWAP_MODES


@pytest.mark.parametrize(
    ("field", "value", "sentence"),
    [
        ("bpm", 400.0, "--bpm 400: choose 20 to 300"),
        ("channel", 0, "--channel 0: MIDI channels are 1 to 16"),
        ("clock", "link?", "--clock 'link?': choose internal, midi or link"),
        ("microtiming", 120.0, "--microtiming 120: choose 0 to 100 (percent)"),
        ("osc_port", 99999, "--osc-port 99999: UDP ports are 1 to 65535 (0 = no OSC)"),
        ("cc_density", 120, "--cc-density 120: nine controllers from it must lie in 0 to 127 (choose 0 to 119)"),
    ],
)
def test_the_config_checks_its_own_fields(field, value, sentence):
    with pytest.raises(UserError) as err:
        PerformConfig(**{field: value})
    assert str(err.value) == sentence


def test_the_pad_is_the_models_square_unless_extent_says_otherwise():
    from performer.app import DEFAULT_CHECKPOINT, Performance
    from rvae.checkpoint import load_checkpoint

    own = load_checkpoint(DEFAULT_CHECKPOINT).extent
    assert own > 3  # the bundled 4/4 model's loops reach beyond ±3
    said: list[str] = []
    performance = Performance(PerformConfig(headless=True, z=(20.0, -1.0)), say=said.append)
    assert performance.controls.get().extent == own and performance.controls.get().z == (own, -1.0)
    assert said == [f"--z 20 -1 lies outside the pad's square (±{own:g}); starting at the nearest edge"]
    other = load_checkpoint(DEFAULT_CHECKPOINT.parent / "demo-6-8.pt")
    performance.use_square(other)  # a model swapped in while playing
    assert performance.controls.get().extent == other.extent != own
    fixed = Performance(PerformConfig(headless=True, extent=2.5), say=print)
    assert fixed.controls.get().extent == 2.5
    fixed.use_square(load_checkpoint(DEFAULT_CHECKPOINT))  # a model swapped in: --extent still holds
    assert fixed.controls.get().extent == 2.5
    with pytest.raises(UserError, match="--extent 0: give a distance above 0"):
        PerformConfig(extent=0.0)


def test_density_controllers_must_not_take_an_axis():
    with pytest.raises(UserError) as err:
        PerformConfig(cc_x=20, cc_y=25, cc_density=21)
    assert str(err.value) == "--cc-density 21 takes controllers 21 to 29, and --cc-y is 25"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_osc_port_in_use_and_an_unknown_host_are_one_sentence(capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert main(["perform", "--headless", "--seconds", "1", "--osc-port", str(port)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"rvae perform: cannot listen for OSC on 127.0.0.1:{port}: ")
    assert last.endswith("choose another --osc-port (0 = no OSC)")
    argv = ["perform", "--headless", "--seconds", "1", "--osc-port", str(free_port())]
    assert main([*argv, "--osc-out", "no-such-host.invalid:6448"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("rvae perform: --osc-out no-such-host.invalid:6448: cannot send OSC to no-such-host")


def test_the_performance_decodes_with_one_torch_thread():
    import torch

    from performer.app import Performance
    from performer.decoder import DECODE_THREADS

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # what torch picks on a 2-core machine
    try:
        with Performance(PerformConfig(headless=True, osc_port=0), say=lambda line: None):
            assert torch.get_num_threads() == DECODE_THREADS == 1
        assert torch.get_num_threads() == 2  # the caller's, back
    finally:
        torch.set_num_threads(before)


@pytest.mark.skipif(os.path.exists("/dev/snd/seq"), reason="this machine has an ALSA sequencer")
def test_alsa_without_a_sequencer_is_one_sentence_without_alsas_own_lines():
    # ALSA's library prints "ALSA lib seq_hw.c..." on fd 2 itself, so only a real process shows it.
    done = subprocess.run(
        [sys.executable, "-m", "rvae", "perform", "--headless", "--midi-api", "alsa", "--seconds", "1"],
        capture_output=True, text=True, timeout=120, env=os.environ | {"SDL_VIDEODRIVER": "dummy"},
    )
    assert done.returncode == 2
    assert "ALSA lib" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("rvae perform: cannot open a MIDI client with alsa")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--quantum", "3"], "--quantum is for --clock link only"),
        (["--latency", "20"], "--latency is for --clock link only"),
        (["--seconds", "-1"], "--seconds -1: give a time above 0"),
    ],
)
def test_options_that_would_be_ignored_are_refused(args, says, capsys):
    assert main(["perform", "--headless", *args]) == 2
    assert says in capsys.readouterr().err
