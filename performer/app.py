"""``rvae perform``: wires the model, the controls, the clock thread, the ports and the window
together, and takes them down again in order. Behaviour lives in the modules it wires."""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from performer.clock import InternalClock, MidiClockFollower
from performer.control import Controls, ControlState
from performer.decoder import DecodeWorker
from performer.sequencer import SWAP_MODES, Mailbox, Player, Sequencer
from rvae.checkpoint import load_checkpoint
from rvae.errors import UserError

__all__ = ["DEFAULT_CHECKPOINT", "PerformConfig", "perform"]

logger = logging.getLogger(__name__)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "groove-4-4.pt"


@dataclass
class PerformConfig:
    checkpoint: str = str(DEFAULT_CHECKPOINT)
    headless: bool = False  # no window: OSC, MIDI CC and these options drive it
    clock: str = "internal"  # internal, or midi: follow the clock on --midi-in
    bpm: float = 120.0  # internal clock tempo
    midi_out: str = "rvae"  # an existing port whose name contains this, else a virtual port
    midi_in: str | None = None  # port for MIDI clock and CC (default: a virtual "rvae-in" when needed)
    midi_api: str | None = None  # rtmidi backend: alsa, jack, coremidi, winmm (default: rtmidi's)
    channel: int = 10  # MIDI channel, 1-16 (10 = drums)
    send_clock: bool = True  # with the internal clock, send MIDI clock, Start and Stop out
    z: tuple[float, float] = (0.0, 0.0)  # starting cursor
    threshold: float = 0.5
    noise: float = 0.0
    velocity: str = "decoded"  # or fixed (at 100)
    microtiming: float = 100.0  # percent of the decoded microtiming; 0 = on the grid
    mute: list[int] = field(default_factory=list)  # instrument numbers, 1-based as on the keys
    swap: str = "bar"  # when a new pattern takes over: tick, beat or bar
    gate: float = 0.125  # note length in beats
    osc_host: str = "127.0.0.1"
    osc_port: int = 12000  # where Wekinator sends its outputs; 0 = no OSC
    osc_out: str | None = None  # HOST:PORT to send the cursor to as /wek/inputs (Wekinator: 6448)
    cc_x: int | None = None  # MIDI CC moving the cursor's x
    cc_y: int | None = None
    record: str | None = None  # MIDI file of the performance (+ .cursor.csv)
    audio: bool = False  # play a synthesised kit through pygame.mixer
    seconds: float | None = None  # stop after this long (tests, demos)
    switch_interval: float = 0.0002  # the GIL hand-over interval while performing (Python: 5 ms)

    def check(self) -> None:
        if self.clock not in ("internal", "midi"):
            raise UserError(f"--clock {self.clock!r}: choose internal or midi")
        if self.swap not in SWAP_MODES:
            raise UserError(f"--swap {self.swap!r}: choose {', '.join(SWAP_MODES)}")
        if self.velocity not in ("decoded", "fixed"):
            raise UserError(f"--velocity {self.velocity!r}: choose decoded or fixed")
        if not 1 <= self.channel <= 16:
            raise UserError(f"--channel {self.channel}: MIDI channels are 1 to 16")
        if not 20 <= self.bpm <= 300:
            raise UserError(f"--bpm {self.bpm:g}: choose 20 to 300")
        if not 0 <= self.threshold <= 1:
            raise UserError(f"--threshold {self.threshold:g}: choose 0 to 1")
        if not 0 <= self.microtiming <= 100:
            raise UserError(f"--microtiming {self.microtiming:g}: choose 0 to 100 (percent)")
        if not all(math.isfinite(v) for v in self.z):
            raise UserError(f"--z {' '.join(f'{v:g}' for v in self.z)}: give finite numbers (the pad spans -3..3)")
        if not self.gate > 0:
            raise UserError(f"--gate {self.gate:g}: a note must last more than 0 beats")
        if not self.noise >= 0:
            raise UserError(f"--noise {self.noise:g}: choose 0 or more (latent units)")
        for flag, cc in (("--cc-x", self.cc_x), ("--cc-y", self.cc_y)):
            if cc is not None and not 0 <= cc <= 127:
                raise UserError(f"{flag} {cc}: MIDI controller numbers are 0 to 127")
        if self.cc_x is not None and self.cc_x == self.cc_y:
            raise UserError(f"--cc-x and --cc-y are both {self.cc_x}: give each axis its own controller")


def perform(cfg: PerformConfig, say=print, show=print) -> int:
    """Run until Ctrl-C, SIGTERM, the window closing or ``cfg.seconds``. Returns an exit status.
    ``say`` gets notices (stderr in the CLI), ``show`` the headless status and patterns (stdout)."""
    from performer import control, ports

    cfg.check()
    ckpt = load_checkpoint(cfg.checkpoint)
    names = ckpt.kit.names
    if any(not 1 <= m <= len(names) for m in cfg.mute):
        raise UserError(f"--mute {','.join(map(str, cfg.mute))}: this model's instruments are 1 to {len(names)}")
    controls = Controls(
        ControlState(
            z=tuple(cfg.z),
            threshold=cfg.threshold,
            noise=cfg.noise,
            velocity=cfg.velocity,
            microtiming=cfg.microtiming / 100.0,
            mutes=frozenset(m - 1 for m in cfg.mute),
            swap=cfg.swap,
            bpm=cfg.bpm,
        )
    )
    stop = threading.Event()
    headless = cfg.headless
    if not headless:
        from performer.ui import open_display

        with ports.quiet_stderr():
            why = open_display()
        if why:
            say(f"no window: {why}; going on headless (Ctrl-C stops)")
            headless = True

    opened: list = []  # closed in reverse order, whatever happens
    old_interval = sys.getswitchinterval()
    old_term = signal.getsignal(signal.SIGTERM)
    try:
        if cfg.midi_api:  # an API the user named must open
            out = ports.open_output(cfg.midi_out, cfg.midi_api, channel=cfg.channel - 1)
        else:
            out, why = ports.open_output_any(cfg.midi_out, channel=cfg.channel - 1)
            if out is None:
                say(f"{why}; playing without one")
        outputs: list = []
        port_text = "out: none"
        if out is not None:
            opened.append(out)
            outputs.append(out)
            port_text = f"out: {out.name} ({out.api})"
        if cfg.audio:
            from performer.audio import open_audio

            with ports.quiet_stderr():
                preview, note = open_audio(ckpt.kit)
            say(note)
            if preview is not None:
                opened.append(preview)
                outputs.append(preview)
        recording = None
        if cfg.record:
            from performer.record import Recording

            recording = Recording(cfg.record, cfg.bpm, ckpt.grid.time_signature)
            outputs.append(recording)
        follower = MidiClockFollower() if cfg.clock == "midi" else None
        clock = follower or InternalClock(cfg.bpm)
        mailbox = Mailbox()
        player = Player(
            Sequencer(swap=cfg.swap),
            mailbox,
            controls,
            outputs,
            clock,
            channel=cfg.channel - 1,
            gate=cfg.gate,
            send_clock=cfg.send_clock,
            ports=port_text,
        )
        cc = control.CCMap(cfg.cc_x, cfg.cc_y) if cfg.cc_x is not None or cfg.cc_y is not None else None
        if cfg.clock == "midi" or cc is not None or cfg.midi_in:

            def on_input(msg, stamp):
                if follower is not None and follower.hear(msg, stamp):
                    player.wake()
                if cc is not None and msg.type == "control_change":
                    cc.handle(msg, controls)

            # the API the output opened with, so the ALSA-less fallback to JACK holds for input too
            api = cfg.midi_api or (out.api if out is not None else None)
            inp = ports.open_input(cfg.midi_in or "rvae-in", api, on_input)
            opened.append(inp)
            if cfg.midi_in and inp.virtual:
                say(
                    f"no MIDI source's name contains {cfg.midi_in!r}: made the input {inp.name}; "
                    "connect your clock or controller to it"
                )
            port_text += f"  in: {inp.name}"
            player.ports = port_text
        worker = DecodeWorker(ckpt, controls, mailbox, lambda: player.view)
        worker.turn()  # the first pattern before the clock starts: bar 1 is never empty
        if cfg.osc_port:
            server = control.OscServer(controls, cfg.osc_host, cfg.osc_port, instruments=len(ckpt.kit))
            server.start()
            opened.append(server)
            say(f"OSC in on {cfg.osc_host}:{server.port} (/wek/outputs x y, /rvae/xy, /rvae/threshold ...)")
        cursor_out = None
        if cfg.osc_out:
            cursor_out = control.OscCursorOut(*control.parse_host_port(cfg.osc_out))
            opened.append(cursor_out)

        sys.setswitchinterval(cfg.switch_interval)  # the clock thread must not wait 5 ms for the GIL
        # SIGTERM acts as Ctrl-C. Not stop.set(): a handler runs between two bytecodes of the
        # main thread, maybe inside Event.wait holding its lock, and set() would deadlock on it.
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        player.start()
        opened.append(player)
        worker.start()
        opened.append(worker)
        say(
            f"playing {Path(cfg.checkpoint).name} ({ckpt.grid.meter}) on {port_text}, clock {cfg.clock}"
            + (f" at {cfg.bpm:g} BPM" if cfg.clock == "internal" else "")
            + ("" if headless else "; window open")
        )
        deadline = time.monotonic() + cfg.seconds if cfg.seconds else None
        if deadline is not None:
            threading.Thread(target=lambda: (stop.wait(cfg.seconds), stop.set()), daemon=True).start()

        def follow_cursor() -> None:
            z = controls.get().z
            if recording is not None:
                recording.move(z, player.view.beat)
                recording.tempo(player.view.bpm)  # set, or followed
            if cursor_out is not None:
                cursor_out.send_cursor(z)  # a steady stream, moving or not: Wekinator records per message

        if headless:
            from performer.ui import run_console

            run_console(lambda: player.view, names, stop, follow_cursor, show)
        else:
            from performer.ui import run_window

            run_window(ckpt, controls, lambda: player.view, stop, on_frame=follow_cursor)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        stop.set()
        for thing in reversed(opened):  # threads first, then the ports: note-offs go out before close
            try:
                (thing.stop if hasattr(thing, "stop") else thing.close)()
            except Exception:
                logger.exception("closing %r failed", thing)
        sys.setswitchinterval(old_interval)
        signal.signal(signal.SIGTERM, old_term)
        if cfg.record and "recording" in locals() and recording is not None:
            midi, side = recording.save()
            say(f"recorded {midi} and {side}")
