"""``rvae perform``: wires the model, the controls, the clock thread, the ports and the window
together, and takes them down again in order. Behaviour lives in the modules it wires.

    with Performance(PerformConfig(bpm=96), say=print) as performance:   # opens and starts
        performance.run()            # until Ctrl-C, SIGTERM, the window closing or cfg.seconds
    # every thread stopped and every port closed, in reverse order; the recording saved
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import logging
import math
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from performer import control, ports
from performer.clock import Clock, InternalClock, MidiClockFollower
from performer.control import TEMPO_RANGE, VELOCITY_MODES, Controls, ControlState
from performer.decoder import DecodeWorker, decode_threads
from performer.learn import Learning, session_folder
from performer.link import check_options
from performer.ports import Output, OutputPort
from performer.record import Recording
from performer.rig import JackRig, LiveOutput
from performer.sequencer import SWAP_MODES, Mailbox, Player, PlayerView, Sequencer
from rvae.checkpoint import Checkpoint, load_checkpoint
from rvae.errors import UserError

__all__ = ["CLOCKS", "DEFAULT_CHECKPOINT", "PerformConfig", "Performance", "perform"]

logger = logging.getLogger(__name__)
DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "groove-4-4.pt"
CLOCKS = ("internal", "midi", "link")


def _option(help: str, **argparse: object) -> dict:
    """Field metadata for the ``rvae perform`` option made from it (rvae.cli.add_config_options):
    its help, and any argparse setting its type does not imply (choices, metavar, nargs...)."""
    return {"help": help, "argparse": argparse}


@dataclass
class PerformConfig:
    """Everything ``rvae perform`` takes; each field is the option of the same name. Checks
    its own fields when made (UserError naming the option)."""

    checkpoint: str = str(DEFAULT_CHECKPOINT)
    headless: bool = field(default=False, metadata=_option("no window: OSC, MIDI CC and these options drive it"))
    clock: str = field(
        default="internal",
        metadata=_option(
            "internal; midi: follow the MIDI clock arriving on --midi-in; link: join the Ableton Link "
            "session (the rvae[link] extra)",
            choices=CLOCKS,
        ),
    )
    bpm: float = field(default=120.0, metadata=_option("internal clock tempo; Link's when no peer is there"))
    quantum: float | None = field(
        default=None,
        metadata=_option(
            "Link: the bar's length in quarter notes (default: the model's meter's; 7/8 = 3.5)", metavar="Q"
        ),
    )
    latency: float = field(
        default=0.0,
        metadata=_option(
            "Link: milliseconds every note and pulse leaves earlier (negative: later), -500 to 500", metavar="MS"
        ),
    )
    link_start_stop: bool = field(default=True, metadata=_option("Link: do not share start and stop with the peers"))
    midi_out: str = field(
        default="rvae", metadata=_option("an output port whose name contains this, else a virtual one")
    )
    midi_in: str | None = field(
        default=None, metadata=_option("input port for clock and CC (default: a virtual 'rvae-in')")
    )
    midi_api: str | None = field(
        default=None,
        metadata=_option(
            f"rtmidi backend: {', '.join(ports.available_apis())} (default: rtmidi's, else JACK)",
            choices=ports.available_apis(),
            type=str.lower,
        ),
    )
    channel: int = field(default=10, metadata=_option("MIDI channel, 1-16 (default: 10, General MIDI drums)"))
    send_clock: bool | None = field(
        default=None,
        metadata=_option(
            "MIDI clock, Start/Stop and Song Position out (default: on with the internal and link clocks, off "
            "with midi: --send-clock forwards the followed clock)"
        ),
    )
    z: tuple[float, float] = field(default=(0.0, 0.0), metadata=_option("starting cursor", metavar=("X", "Y")))
    extent: float | None = field(
        default=None,
        metadata=_option(
            "the pad (window, /wek/outputs, CC) spans [-E, E]^2 (default: the model's square, which holds "
            "its training loops; rvae info shows it)",
            metavar="E",
        ),
    )
    threshold: float = field(default=0.5, metadata=_option("onset probability that makes a hit"))
    noise: float = field(default=0.0, metadata=_option("random jitter of z each bar, in latent units"))
    velocity: str = field(default="decoded", metadata=_option("decoded, or fixed (at 100)", choices=VELOCITY_MODES))
    microtiming: float = field(default=100.0, metadata=_option("percent of the decoded microtiming, 0 = on the grid"))
    mute: list[int] = field(  # the option is text ("3,4"): performer.cli reads it
        default_factory=list,
        metadata=_option(
            "instruments to mute, e.g. 3,4, numbered from 1 as keys 1-9 (default: none)", type=str, default=""
        ),
    )
    swap: str = field(default="bar", metadata=_option("when a new pattern takes over", choices=SWAP_MODES))
    gate: float = field(default=0.125, metadata=_option("note length in beats"))
    osc_host: str = field(default="127.0.0.1", metadata=_option("address OSC listens on"))
    osc_port: int = field(default=12000, metadata=_option("OSC port, where Wekinator sends its outputs; 0 = no OSC"))
    osc_out: str | None = field(
        default=None,
        metadata=_option(
            "send the cursor as /wek/inputs (default 127.0.0.1:6448, Wekinator's input)",
            nargs="?",
            const="127.0.0.1:6448",
            metavar="HOST:PORT",
        ),
    )
    cc_x: int | None = field(default=None, metadata=_option("MIDI CC number moving the cursor's x (default: none)"))
    cc_y: int | None = field(default=None, metadata=_option("MIDI CC number moving the cursor's y (default: none)"))
    cc_density: int | None = field(
        default=None,
        metadata=_option(
            "first of nine MIDI CC numbers setting the density of instruments 1-9, 64 = the model's own "
            "(default: none)",
            metavar="FIRST",
        ),
    )
    record: str | None = field(
        default=None,
        metadata=_option(
            "record the performance, and the cursor and densities to OUT.cursor.csv (default: no recording)",
            metavar="OUT.mid",
        ),
    )
    audio: bool = field(default=False, metadata=_option("play a synthesised drum kit through the sound card"))
    seconds: float | None = field(default=None, metadata=_option("stop after this many seconds (default: never)"))
    learn_in: str | None = field(
        default=None,
        metadata=_option(
            "capture notes played on this MIDI input (may be --midi-in's) to learn from: l / /rvae/learn "
            "(default: no capture)",
            metavar="NAME",
        ),
    )
    learn_save: str | None = field(
        default=None,
        metadata=_option(
            "folder for the captured bars and learned models (default: beside --record, else "
            "~/.local/share/rvae/sessions/DATE/)",
            metavar="DIR",
        ),
    )
    learn_follow: str = field(
        default="on", metadata=_option("after a learn, move the cursor to the first new bar", choices=("on", "off"))
    )
    switch_interval: float = 0.0002  # the GIL hand-over interval while performing (Python: 5 ms); not an option

    def __post_init__(self) -> None:
        self.z = (float(self.z[0]), float(self.z[1]))  # argparse gives a list
        if self.clock not in CLOCKS:
            raise UserError(f"--clock {self.clock!r}: choose {', '.join(CLOCKS[:-1])} or {CLOCKS[-1]}")
        check_options(self.quantum, self.latency / 1000.0)  # one sentence, before anything imports Link
        if self.clock != "link" and (self.quantum is not None or self.latency):
            raise UserError(f"--{'quantum' if self.quantum is not None else 'latency'} is for --clock link only")
        if self.seconds is not None and not self.seconds > 0:
            raise UserError(f"--seconds {self.seconds:g}: give a time above 0 (or leave it out: play until stopped)")
        if self.swap not in SWAP_MODES:
            raise UserError(f"--swap {self.swap!r}: choose {', '.join(SWAP_MODES)}")
        if self.velocity not in VELOCITY_MODES:
            raise UserError(f"--velocity {self.velocity!r}: choose {' or '.join(VELOCITY_MODES)}")
        if not 0 <= self.osc_port <= 65535:
            raise UserError(f"--osc-port {self.osc_port}: UDP ports are 1 to 65535 (0 = no OSC)")
        if not 1 <= self.channel <= 16:
            raise UserError(f"--channel {self.channel}: MIDI channels are 1 to 16")
        lo, hi = TEMPO_RANGE
        if not lo <= self.bpm <= hi:
            raise UserError(f"--bpm {self.bpm:g}: choose {lo:g} to {hi:g}")
        if not 0 <= self.threshold <= 1:
            raise UserError(f"--threshold {self.threshold:g}: choose 0 to 1")
        if not 0 <= self.microtiming <= 100:
            raise UserError(f"--microtiming {self.microtiming:g}: choose 0 to 100 (percent)")
        if not all(math.isfinite(v) for v in self.z):
            raise UserError(f"--z {' '.join(f'{v:g}' for v in self.z)}: give finite numbers")
        if self.extent is not None and not (math.isfinite(self.extent) and self.extent > 0):
            raise UserError(f"--extent {self.extent:g}: give a distance above 0")
        if not self.gate > 0:
            raise UserError(f"--gate {self.gate:g}: a note must last more than 0 beats")
        if not self.noise >= 0:
            raise UserError(f"--noise {self.noise:g}: choose 0 or more (latent units)")
        for flag, cc in (("--cc-x", self.cc_x), ("--cc-y", self.cc_y)):
            if cc is not None and not 0 <= cc <= 127:
                raise UserError(f"{flag} {cc}: MIDI controller numbers are 0 to 127")
        if self.learn_follow not in ("on", "off"):
            raise UserError(f"--learn-follow {self.learn_follow!r}: choose on or off")
        if self.cc_x is not None and self.cc_x == self.cc_y:
            raise UserError(f"--cc-x and --cc-y are both {self.cc_x}: give each axis its own controller")
        if self.cc_density is not None:
            first, last = self.cc_density, self.cc_density + control.DENSITY_CCS - 1
            if not 0 <= first <= 127 - control.DENSITY_CCS + 1:
                raise UserError(
                    f"--cc-density {first}: nine controllers from it must lie in 0 to 127 (choose 0 to 119)"
                )
            for flag, cc in (("--cc-x", self.cc_x), ("--cc-y", self.cc_y)):
                if cc is not None and first <= cc <= last:
                    raise UserError(f"--cc-density {first} takes controllers {first} to {last}, and {flag} is {cc}")


class Performance:
    """One running performance. Made, it has checked the config and loaded the model (nothing
    open yet); entered, it opens the ports, the audio, OSC and starts the clock thread and
    the decoder, each into one ExitStack, so that leaving (however) stops each exactly once,
    in reverse order: threads before the ports they send to, so note-offs go out before the
    ports close; the recording is saved once the clock thread has stopped."""

    def __init__(
        self, cfg: PerformConfig, say: Callable[[str], object] = print, show: Callable[[str], object] = print
    ) -> None:
        self.cfg, self.say, self.show = cfg, say, show
        self.ckpt = load_checkpoint(cfg.checkpoint)
        names = self.ckpt.kit.names
        if any(not 1 <= m <= len(names) for m in cfg.mute):
            raise UserError(f"--mute {','.join(map(str, cfg.mute))}: this model's instruments are 1 to {len(names)}")
        self.controls = Controls(
            ControlState(
                z=cfg.z,
                threshold=cfg.threshold,
                noise=cfg.noise,
                velocity=cfg.velocity,
                microtiming=cfg.microtiming / 100.0,
                mutes=frozenset(m - 1 for m in cfg.mute),
                swap=cfg.swap,
                bpm=cfg.bpm,
            )
        )
        self.use_square(self.ckpt)  # and --z held inside it, as /rvae/xy is
        if self.controls.get().z != cfg.z:
            e = self.controls.get().extent
            where = f"--z {cfg.z[0]:g} {cfg.z[1]:g}"
            self.say(f"{where} lies outside the pad's square (±{e:g}); starting at the nearest edge")
        self.stop = threading.Event()  # set: the performance ends
        self._stack = contextlib.ExitStack()
        self.headless = cfg.headless or not self._window_opens()
        self.recording: Recording | None = None
        self.learning: Learning | None = None
        self.cursor_out: control.OscCursorOut | None = None
        self.rig: JackRig | None = None

    def square_of(self, ckpt: Checkpoint) -> float:
        """The half-width of the pad's square for ``ckpt``: --extent if given, else the model's own."""
        return self.cfg.extent if self.cfg.extent is not None else ckpt.extent

    def use_square(self, ckpt: Checkpoint) -> None:
        """Switch the pad to ``ckpt``'s square (unless --extent fixed it), for a model swapped
        in while playing: /wek/outputs, /wek/inputs, /rvae/xy, CC, the arrows and the window
        (which decodes its map afresh) all read it from the controls from their next message
        or frame on; the cursor stays where it is, moved inside the square if it falls outside."""
        self.controls.set_extent(self.square_of(ckpt))

    def _window_opens(self) -> bool:
        from performer.ui import open_display

        with ports.quiet_stderr():
            why = open_display()
        if why:
            self.say(f"no window: {why}; going on headless (Ctrl-C stops)")
        return why is None

    def _on_exit(self, stop: Callable[[], object]) -> None:
        """Call ``stop`` on the way out; a failure is logged with its traceback, and the
        things started before still stop."""

        def guarded() -> None:
            try:
                stop()
            except Exception:
                logger.exception("stopping failed: %r", stop)

        self._stack.callback(guarded)

    def __enter__(self) -> Performance:
        try:
            self._start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._stack.close()

    def _start(self) -> None:
        cfg, ckpt = self.cfg, self.ckpt
        # SIGTERM acts as Ctrl-C, from here to the end (the ports close in order). Not
        # stop.set(): a handler runs between two bytecodes of the main thread, maybe inside
        # Event.wait holding its lock, and set() would deadlock on it.
        old_term = signal.signal(signal.SIGTERM, signal.default_int_handler)
        self._on_exit(lambda: signal.signal(signal.SIGTERM, old_term))
        # `kill -USR1 PID`: every thread's stack, should a show ever seem stuck; onto the process's
        # own standard error (a replaced sys.stderr may have no file descriptor; pythonw has none)
        if hasattr(signal, "SIGUSR1") and sys.__stderr__ is not None:
            with contextlib.suppress(ValueError, OSError):
                faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
                self._on_exit(lambda: faulthandler.unregister(signal.SIGUSR1))
        old_interval = sys.getswitchinterval()  # lowered before the threads start, restored once the ports are closed
        self._on_exit(lambda: sys.setswitchinterval(old_interval))
        clock = self._open_clock()  # Link's session is left after the clock thread and the ports stop
        out = self._open_output()
        outputs: list[Output] = []
        port_text = "out: none"
        live = LiveOutput(out) if out is not None and out.api == "jack" else None  # the rig reopens it
        if out is not None:
            self._on_exit((live or out).close)
            outputs.append(live or out)
            port_text = f"out: {out.name} ({out.api})"
            if out.virtual and cfg.midi_out != PerformConfig.midi_out:
                self.say(
                    f"no MIDI destination's name contains {cfg.midi_out!r}: made the output {out.name}; "
                    "connect it to your synth or drum machine"
                )
        if cfg.audio:
            from performer.audio import open_audio

            with ports.quiet_stderr():
                preview, note = open_audio(ckpt.kit)
            self.say(note)
            if preview is not None:
                self._on_exit(preview.close)
                outputs.append(preview)
        if cfg.record:
            self.recording = Recording(cfg.record, cfg.bpm, ckpt.grid.time_signature, instruments=len(ckpt.kit))
            outputs.append(self.recording)
            self._on_exit(self._save_recording)  # after the clock thread's last note-offs
        inp: ports.InputPort | None = None
        reopen_in: Callable[..., ports.InputPort] | None = None
        follower = clock if isinstance(clock, MidiClockFollower) else None
        mailbox = Mailbox()
        player = self.player = Player(
            Sequencer(swap=cfg.swap),
            mailbox,
            self.controls,
            outputs,
            clock,
            channel=cfg.channel - 1,
            gate=cfg.gate,
            send_clock=cfg.send_clock is not False,
            ports=port_text,
        )
        self._stack.enter_context(decode_threads())  # one torch thread: see decoder.DECODE_THREADS
        worker = DecodeWorker(ckpt, self.controls, mailbox, lambda: player.view)
        worker.turn()  # the first pattern before the clock starts: bar 1 is never empty
        learning = self.learning = self._learning(worker, clock) if cfg.learn_in else None
        shared = learning is not None and cfg.learn_in == cfg.midi_in  # one port: clock and CC and played notes
        wanted = (cfg.cc_x, cfg.cc_y, cfg.cc_density)
        cc = control.CCMap(cfg.cc_x, cfg.cc_y, cc_density=cfg.cc_density) if wanted != (None,) * 3 else None
        # the API the output opened with, so the ALSA-less fallback to JACK holds for input too
        api = cfg.midi_api or (out.api if out is not None else None)
        if follower is not None or cc is not None or cfg.midi_in:

            def on_input(msg, stamp) -> None:  # rtmidi's thread: only queue and write values
                if follower is not None and follower.hear(msg, stamp):
                    player.wake()
                if cc is not None:
                    cc.handle(msg, self.controls)
                if shared and learning is not None:
                    learning.hear(msg, stamp)

            def open_in(api: str | None = api, among: list[str] | None = None) -> ports.InputPort:
                timed = follower is not None or shared  # the follower times pulses by their arrival
                return ports.open_input(cfg.midi_in or "rvae-in", api, on_input, timed=timed, among=among)

            reopen_in = open_in
            inp = opened = open_in()

            def close_in() -> None:  # after a server restart, the port the rig reopened
                (self.rig.inp if self.rig is not None and self.rig.inp is not None else opened).close()

            self._on_exit(close_in)
            if cfg.midi_in and inp.virtual:
                self.say(
                    f"no MIDI source's name contains {cfg.midi_in!r}: made the input {inp.name}; "
                    "connect your clock or controller to it"
                )
            port_text += f"  in: {inp.name}"
            player.ports = port_text
        played: ports.InputPort | None = None
        reopen_played: Callable[..., ports.InputPort] | None = None
        if learning is not None:
            if not shared:
                learn_in, hear = cfg.learn_in, learning.hear
                assert learn_in is not None

                def open_played(api: str | None = api, among: list[str] | None = None) -> ports.InputPort:
                    return ports.open_input(learn_in, api, hear, timed=True, among=among)

                reopen_played = open_played
                played = first_played = open_played()

                def close_played() -> None:  # after a server restart, the port the rig reopened
                    (self.rig.inputs.get("learn", first_played) if self.rig is not None else first_played).close()

                self._on_exit(close_played)
                learning.source = played.name
                if played.virtual:
                    self.say(
                        f"no MIDI source's name contains {cfg.learn_in!r}: made the input {played.name}; "
                        "connect your pads or e-kit to it"
                    )
                port_text += f"  learn: {played.name}"
                player.ports = port_text
        if cfg.osc_port:
            server = control.OscServer(self.controls, cfg.osc_host, cfg.osc_port, instruments=len(ckpt.kit))
            try:
                server.start()
            except OSError as e:  # the port is taken, the host unknown: the user's to change
                raise UserError(f"{e}; choose another --osc-port (0 = no OSC)") from e
            self._on_exit(server.stop)
            self.say(f"OSC in on {cfg.osc_host}:{server.port} (/wek/outputs x y, /rvae/xy, /rvae/threshold ...)")
        if cfg.osc_out:
            try:
                self.cursor_out = control.OscCursorOut(*control.parse_host_port(cfg.osc_out))
            except OSError as e:
                raise UserError(f"--osc-out {cfg.osc_out}: {e}") from e
            self._on_exit(self.cursor_out.close)

        # What exists by now (torch, the model, pygame: ~170,000 objects) stays to the end. A full
        # garbage collection over it took 40 ms, in whichever thread allocated last, the clock
        # thread's too, or holding the GIL it waits for; frozen, a collection passes over only
        # what the show itself allocates (0.0 ms right after).
        gc.collect()
        gc.freeze()
        self._on_exit(gc.unfreeze)
        logger.info("garbage collection: %d objects frozen", gc.get_freeze_count())
        sys.setswitchinterval(cfg.switch_interval)  # the clock thread must not wait 5 ms for the GIL
        player.start()
        self._on_exit(player.stop)
        if live is not None:

            def open_out(among: list[str] | None = None) -> OutputPort:
                return ports.open_output(cfg.midi_out, "jack", channel=cfg.channel - 1, among=among)

            self.rig = JackRig(live, open_out, inp, reopen_in, player, self.say, played, reopen_played)
            self.rig.start()
            self._on_exit(self.rig.stop)
        worker.start()
        self._on_exit(worker.stop)
        if learning is not None:
            learning.start()
            self._on_exit(learning.stop)  # first on the way out: the bar being played is written
        self.say(
            f"playing {Path(cfg.checkpoint).name} ({ckpt.grid.meter}) on {port_text}, clock {cfg.clock}"
            + (f" at {cfg.bpm:g} BPM" if cfg.clock == "internal" else "")
            + f"; the pad spans ±{self.controls.get().extent:g}"
            + ("" if self.headless else "; window open")
        )

    def _learning(self, worker: DecodeWorker, clock: Clock) -> Learning:
        cfg, ckpt, player = self.cfg, self.ckpt, self.player
        folder = Path(cfg.learn_save).expanduser() if cfg.learn_save else session_folder(cfg.record)
        learning = Learning(
            ckpt,
            self.controls,
            worker,
            lambda: player.view,
            clock.beat_at,
            folder,
            self.say,
            follow=cfg.learn_follow == "on",
            on_model=self.use_square,
        )
        learning.source = cfg.learn_in or ""
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            self.say(f"cannot make the session folder {folder} ({e.strerror or e}): captured bars stay in memory")
        self.say(
            f"learning: bars played are saved in {folder}; l (or /rvae/learn) learns them, u undoes, f finds"
            + ("" if ckpt.keeps_loops else f"; but {Path(cfg.checkpoint).name} was trained with --no-keep-loops")
        )
        return learning

    def _open_clock(self) -> Clock:
        cfg = self.cfg
        if cfg.clock == "internal":
            return InternalClock(cfg.bpm)
        if cfg.clock == "midi":
            follower = MidiClockFollower()
            follower.sends_clock = cfg.send_clock is True  # the bridge: only when asked
            return follower
        from performer.link import LinkClock, bar_quantum

        quantum = cfg.quantum or bar_quantum(self.ckpt.grid.time_signature)
        link = LinkClock(cfg.bpm, quantum, cfg.latency / 1000.0, cfg.link_start_stop).open()
        self._on_exit(link.close)
        # Link tells a newcomer the session's tempo and phase, not whether it plays (start and
        # stop are shared as they happen): alone, play now; among peers sharing start and
        # stop, wait for a start rather than start everyone; else join at the next bar line.
        peers = link.wait_for_peers(1.0)
        where = f"Link: {peers} peer{'' if peers == 1 else 's'} at {link.bpm:.1f} BPM, quantum {quantum:g}"
        if not peers:
            self.say(f"{where}: playing alone; peers that join share the tempo and bar")
        elif cfg.link_start_stop:
            self.controls.update(running=False)
            self.say(f"{where}: waiting for a peer's start (space or /rvae/start starts everyone)")
        else:
            self.say(f"{where}: playing from the session's next bar")
        return link

    def _open_output(self) -> OutputPort | None:
        cfg = self.cfg
        if cfg.midi_api:  # an API the user named must open
            return ports.open_output(cfg.midi_out, cfg.midi_api, channel=cfg.channel - 1)
        out, why = ports.open_output_any(cfg.midi_out, channel=cfg.channel - 1)
        if out is None:
            self.say(f"{why}; playing without one")
        return out

    def _save_recording(self) -> None:
        if self.recording is not None:
            midi, side = self.recording.save()
            self.say(f"recorded {midi} and {side}")

    def _follow_cursor(self) -> None:
        """On the main thread, each frame or console tick: the cursor to the recording and OSC out."""
        st = self.controls.get()
        z = st.z
        if self.recording is not None:
            self.recording.move(z, self.player.view.beat, st.density)
            self.recording.tempo(self.player.view.bpm)  # set, or followed
        if self.cursor_out is not None:
            self.cursor_out.send_cursor(z, st.extent)  # a steady stream, moving or not: Wekinator records per message

    def run(self) -> None:
        """The main thread's part, until the performance ends (``stop`` is set, or Ctrl-C)."""
        seconds = self.cfg.seconds
        if seconds:

            def end_after() -> None:
                self.stop.wait(seconds)
                self.stop.set()

            threading.Thread(target=end_after, name="rvae-seconds", daemon=True).start()

        def view() -> PlayerView:  # read afresh each time: the clock thread replaces it whole
            return self.player.view

        if self.headless:
            from performer.ui import run_console

            # rvae -v sets our loggers to INFO: the same switch prints the bar line
            verbose = logging.getLogger("performer").isEnabledFor(logging.INFO)
            learning = self.learning
            extra = None
            if learning is not None:

                def extra() -> str:
                    lv = learning.view
                    return f"captured {len(lv.bars)}" + (f", unmapped {lv.unmapped}" if lv.unmapped else "")

            run_console(
                view,
                self.ckpt.kit.names,
                self.stop,
                self._follow_cursor,
                self.show,
                verbose,
                extra,
                stopped_here=lambda: not self.controls.get().running,
            )
        else:
            from performer.ui import run_window

            learn_view = (lambda lv=self.learning: lv.view) if self.learning is not None else None
            run_window(self.ckpt, self.controls, view, self.stop, on_frame=self._follow_cursor, learn=learn_view)


def perform(cfg: PerformConfig, say: Callable[[str], object] = print, show: Callable[[str], object] = print) -> int:
    """Run until Ctrl-C, SIGTERM, the window closing or ``cfg.seconds``. Returns an exit status.
    ``say`` gets notices (stderr in the CLI), ``show`` the headless status and patterns (stdout)."""
    performance = Performance(cfg, say, show)
    try:
        with performance:
            performance.run()
    except KeyboardInterrupt:
        pass
    return 0
