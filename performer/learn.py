"""Learning on stage: what is played into ``--learn-in`` is captured bar by bar, saved at
once, and on ``l`` (OSC ``/rvae/learn``) joins the model's training set; training goes on
from the current weights in a warm child process, and the new model takes over at a bar
line while the music plays.

Who does what (DESIGN.md, "Realtime rules"):
- the MIDI input callback (``Capture.hear``): turns the note's arrival time into the
  clock's beat and queues (beat, note, velocity); nothing else;
- the ``rvae-learn`` thread (``Learning``): places the queued notes on the model's grid,
  closes bars, writes each as a MIDI file in the session folder, answers learn / undo /
  find requests (counters in ``Controls``, written by the keys and OSC), hands jobs to the
  learner and swaps its models in through the decode worker. Never the clock thread;
- the learner (``python -m performer.learn``): a child process with torch imported and the
  model loaded before it is needed, one torch thread, niced, so it shares neither a GIL nor
  priority with the clock thread. It reads one JSON job a line on stdin (the base
  checkpoint's path, the new loops' hits, where to write) and answers one JSON line on
  stdout. If it dies, the old model plays on and a fresh learner starts.

The session folder holds ``bar-0001.mid``... (each captured bar, written atomically as
soon as it is closed) and ``model-01.pt``... (each learned model). A bar that cannot be
written stays in memory, is retried with the next, and the status says so.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

import mido
import numpy as np

from performer.control import LEARN_HELD
from rvae.checkpoint import Checkpoint, load_checkpoint
from rvae.grid import Grid
from rvae.groove import Groove
from rvae.kit import Kit
from rvae.midi_io import write_midi

if TYPE_CHECKING:
    from performer.control import Controls
    from performer.decoder import DecodeWorker
    from performer.sequencer import PlayerView

__all__ = ["HELD", "MAX_NEW", "Bar", "Capture", "LearnView", "Learner", "Learning", "session_folder", "stage_updates"]

logger = logging.getLogger(__name__)

HELD = LEARN_HELD  # captured bars kept in memory (and shown)
MAX_NEW = 8  # a learn without a count takes the bars since the last learn, at most this many
POLL = 0.02  # seconds between two turns of the learn thread
# The learner's niceness: the performer's own threads (decoder, window, this thread) come
# first. It costs a learn nothing: the clock thread runs SCHED_FIFO, above any niceness,
# and with the kernel's autogroups (on by default) niceness ranks a process only within its
# session, so other programs' load delays the learner alike at 0, 5 or 19 (measured, 2
# cores under load 5.6, 80 updates: 2.35-3.26 s at 0, 2.35-2.67 s at 5, 2.57-2.85 s at 19;
# waiting for a core 0.8-1.7 s in each). bench_learn reports that wait ("learner_waited_for_cpu").
NICE = 5
TPQ = 1920  # ticks per quarter of the bars' MIDI files: at 174 BPM a tick is 0.18 ms, finer than any JACK period


def session_folder(record: str | None, now: datetime | None = None) -> Path:
    """Where captured bars and learned models go when ``--learn-save`` is not given: beside
    the recording (``show.mid`` -> ``show-learn/``), else a folder per session under
    ``~/.local/share/rvae/sessions/`` named by date and time."""
    if record:
        rec = Path(record)
        return rec.with_name(f"{rec.stem}-learn")
    stamp = (now or datetime.now()).strftime("%Y-%m-%d_%H-%M-%S")
    return Path.home() / ".local" / "share" / "rvae" / "sessions" / stamp


# --- capture -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Bar:
    """One captured loop of the model's length (a bar for one-bar models)."""

    number: int  # counted from 1 in the session; the file is bar-NNNN.mid
    groove: Groove
    saved: bool  # on disk; False: writing failed, kept in memory and retried


class Capture:
    """Played notes -> loops on ``grid``, through ``kit``. ``hear`` runs on the MIDI input's
    thread and only queues; ``take`` (the learn thread) places and closes bars."""

    def __init__(self, grid: Grid, kit: Kit, beat_at: Callable[[float], float], playing: Callable[[], bool]) -> None:
        self.grid, self.kit = grid, kit
        self.beat_at, self.playing = beat_at, playing
        self._lookup = kit.lookup()
        self._inbox: collections.deque[tuple[float, int, int]] = collections.deque()
        self._loop: int | None = None  # the loop (counted from the clock's beat 0) being filled
        self._last = -math.inf  # the beat of the last note placed
        self._hits: dict[tuple[int, int], tuple[int, float]] = {}  # (class, step) -> (velocity, offset)
        self.unmapped = 0  # note-ons the kit does not read
        self.merged = 0  # two hits of one class in one cell: the louder kept

    def hear(self, msg: mido.Message, stamp: float) -> None:
        """The input callback: ``stamp`` (the input's time of arrival) to the clock's beat, queued."""
        if msg.type == "note_on" and msg.velocity > 0 and self.playing():
            self._inbox.append((self.beat_at(stamp), msg.note, msg.velocity))

    def take(self, now_beat: float) -> list[Groove]:
        """Place what arrived; return the loops closed since (those with hits), oldest first.
        A loop closes when a note lands in another, or once the playhead ``now_beat`` is a
        step past its end (its last step's late hits are in)."""
        spq, steps = self.grid.steps_per_quarter, self.grid.steps
        out: list[Groove] = []
        while self._inbox:
            beat, note, velocity = self._inbox.popleft()
            cls = int(self._lookup[note])
            if cls < 0:
                self.unmapped += 1
                continue
            at = beat * spq
            cell = math.floor(at + 0.5)  # the nearest step: an early downbeat is the next loop's
            loop, step = divmod(cell, steps)
            if loop != self._loop or beat < self._last - 0.25:  # another loop, or the clock went back (a Start)
                out += self._close()
                self._loop = loop
            self._last = beat
            offset = max(-1.0, min(1.0, (at - cell) / 0.5))  # half steps, positive = late
            old = self._hits.get((cls, step))
            if old is not None:
                self.merged += 1
                if old[0] >= velocity:
                    continue
            self._hits[(cls, step)] = (velocity, offset)
        if self._loop is not None:
            at = now_beat * spq
            # a step and a half past its end, or the clock restarted
            if at >= (self._loop + 1) * steps + 1.5 or at < self._loop * steps - steps:
                out += self._close()
        return out

    def flush(self) -> list[Groove]:
        """Place what arrived and close the loop being filled (the performance ends)."""
        return self.take(math.inf)

    def _close(self) -> list[Groove]:
        hits, self._hits, self._loop, self._last = self._hits, {}, None, -math.inf
        if not hits:
            return []
        a = np.zeros((3, len(self.kit), self.grid.steps), np.float32)
        for (cls, step), (velocity, offset) in hits.items():
            a[:, cls, step] = 1.0, velocity / 127.0, offset
        return [Groove(a[0], a[1], a[2], self.grid, self.kit)]


# --- the learner process -----------------------------------------------------------------


def _loops_json(grooves: list[Groove]) -> list[dict]:
    return [
        {"hits": [[i, s, v, round(o, 4)] for s, i, v, o in g.hits()], "bpm": g.bpm, "file": g.file, "bar": g.bar}
        for g in grooves
    ]


def _loops_from_json(rows: list[dict], grid: Grid, kit: Kit) -> list[Groove]:
    out = []
    for row in rows:
        a = np.zeros((3, len(kit), grid.steps), np.float32)
        for i, s, v, o in row["hits"]:
            a[:, i, s] = 1.0, v / 127.0, o
        out.append(Groove(a[0], a[1], a[2], grid, kit, float(row["bpm"]), row["file"], int(row["bar"])))
    return out


class Learner:
    """The warm training process. ``submit`` a job; ``replies`` get its answer (a dict), or
    {"died": exit status} if the process ends. Start a new one after it died."""

    def __init__(self, checkpoint: str | Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "performer.learn", str(checkpoint)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.replies: collections.deque[dict] = collections.deque()
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read, name="rvae-learner-reader", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        # blocks in readline (the GIL released): one line per answer
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            if reply.get("ready"):
                self.ready.set()
            else:
                reply["arrived"] = time.perf_counter()
                self.replies.append(reply)
        self.replies.append({"died": self.proc.wait()})

    def submit(self, job: dict) -> bool:
        """Send one job; False if the process is gone (its death is in ``replies``)."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError):
            return False

    def close(self, timeout: float = 2.0) -> None:
        """End the process: stdin closed, then SIGKILL if it lingers (a job in training)."""
        try:
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)
        self._reader.join(timeout)


def stage_updates(loops: int, new: list[Groove]) -> int:
    """Optimiser steps for a learn on stage: what the new bars need, by how many different
    onset patterns they hold (a groove played over and over is one), at most what
    ``rvae train --init`` takes (rvae.train.continue_updates, 300 for ~100 loops).

    Measured on the bundled 4/4 model (93 loops; onset F1 at each loop's own z, 3-5 seeds,
    before: old loops 0.998, new 0.09-0.14), the new loops a quarter of each epoch:
    - one groove 8 times (the tests' and the benchmark's): 40 updates, new 1.0, old 0.93;
      60, new 1.0, old 0.96; 80, new 1.0, old 0.972-0.976; 100, old 0.982;
    - 2 drummer's bars 4 times each (GMD hip-hop): 80, new 1.0, old 0.979-0.982;
    - 4 bars twice each: 120, new 0.994-1.0, old 0.970-0.976; 140, new 1.0, old 0.975-0.98;
    - 8 different bars: 100, new 0.77-0.85; 130, 0.82-0.94; 160, 0.96-0.99 (old 0.97);
      200, 0.97-1.0 (old 0.98).
    65 + 15 a pattern keeps the new at F1 >= 0.96 and the old >= 0.97 in each case; an
    update takes ~20 ms of one core, so one groove learns in ~1.6 s, 8 different bars ~3.7 s.
    On today's bundled model (trained to the fit stop: old loops 0.956 before, 2 seeds) the
    same counts learn less: one groove (80) new 1.0, old 0.91; 8 bars (185) new 0.91-0.93, old
    0.93; 300 updates would give 1.0 / 0.95 but take ~5 s, the whole budget of a learn."""
    from rvae.train import continue_updates

    patterns = len({g.onsets.tobytes() for g in new})
    return min(continue_updates(loops), 65 + 15 * patterns)


def _run_delay() -> float:
    """Seconds this thread has spent runnable but not running (Linux schedstat; 0 elsewhere)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def _serve(checkpoint: str, jobs: IO[str], answers: IO[str]) -> None:
    """The learner's main loop (``python -m performer.learn CKPT``)."""
    import torch

    from rvae.checkpoint import save_checkpoint
    from rvae.errors import UserError
    from rvae.train import TrainConfig, continue_training

    try:
        os.nice(NICE)
    except OSError:
        pass
    torch.set_num_threads(1)
    models: dict[str, Checkpoint] = {}

    def model(path: str) -> Checkpoint:
        if path not in models:
            if len(models) > 4:
                models.pop(next(iter(models)))
            models[path] = load_checkpoint(path)
        return models[path]

    def answer(reply: dict) -> None:
        answers.write(json.dumps(reply) + "\n")
        answers.flush()

    base = model(checkpoint)
    if base.keeps_loops:
        # The first training pays for lazy setup (autograd, the optimiser, the allocator):
        # ~0.8 s of CPU measured. Two updates now, while the performer starts, not at the first learn.
        continue_training(base, base.training_loops()[:1], TrainConfig(threads=1, updates=2))
    answer({"ready": True, "pid": os.getpid()})
    for line in jobs:
        job = json.loads(line)
        t0, cpu0, queued0 = time.perf_counter(), time.process_time(), _run_delay()
        try:
            ckpt = model(job["base"])
            loops = _loops_from_json(job["loops"], ckpt.grid, ckpt.kit)
            updates = stage_updates(ckpt.n_kept_loops + len(loops), loops)
            new = continue_training(ckpt, loops, TrainConfig(threads=1, updates=updates))
            t1 = time.perf_counter()
            new.path = save_checkpoint(new, job["out"])
            models[str(new.path)] = new
            answer(
                {
                    "id": job["id"],
                    "path": str(new.path),
                    "seconds": round(time.perf_counter() - t0, 3),
                    "train_s": round(t1 - t0, 3),
                    "write_s": round(time.perf_counter() - t1, 3),
                    "updates": new.summary.updates,
                    "cpu_s": round(time.process_time() - cpu0, 3),
                    # runnable but waiting for a core (what niceness can cost): from the kernel's schedstat
                    "waited_for_cpu_s": round(_run_delay() - queued0, 3),
                }
            )
        except (UserError, OSError) as e:  # a model that kept no loops, a full disk: said, not a crash
            answer({"id": job["id"], "error": str(e)})
        except Exception as e:
            traceback.print_exc()
            answer({"id": job["id"], "error": f"training failed ({type(e).__name__}: {e})"})


# --- the learn thread ----------------------------------------------------------------------


@dataclass(frozen=True)
class LearnView:
    """What the window and the status show; replaced whole by the learn thread."""

    bars: tuple[Bar, ...] = ()  # held, oldest first
    selected: int = 0  # the last ``selected`` bars are what ``l`` would learn
    unmapped: int = 0  # note-ons the kit does not read
    state: str = ""  # the last thing learning did or failed to do, one sentence
    problem: str = ""  # what is failing now (saving), "" when nothing
    model: Checkpoint | None = None  # the model playing
    models: int = 1  # models learned so far + the first (undo goes back one)
    learning: bool = False


class Learning:
    """Capture, the session folder, the learner and the model swaps: one thread's work.
    ``start`` makes the folder and starts the learner and the thread; ``stop`` closes and
    writes the bar being played, and ends both."""

    def __init__(
        self,
        ckpt: Checkpoint,
        controls: Controls,
        worker: DecodeWorker,
        view: Callable[[], PlayerView],
        beat_at: Callable[[float], float],
        folder: Path,
        say: Callable[[str], object] = print,
        follow: bool = True,
        source: str = "",
        on_model: Callable[[Checkpoint], object] = lambda ckpt: None,
    ) -> None:
        self.controls, self.worker, self.player_view = controls, worker, view
        self.on_model = on_model  # the pad's square follows the model (Performance.use_square)
        self.folder, self.say, self.follow, self.source = folder, say, follow, source
        # The app makes the folder at start (an unwritable place is said before anything is
        # played); one that was not there before and got nothing is removed at the end.
        self._new_folder = not folder.exists()
        self.capture = Capture(ckpt.grid, ckpt.kit, beat_at, lambda: view().state == "playing")
        self.models = [ckpt]
        self.held: collections.deque[Bar] = collections.deque(maxlen=HELD)
        self.unsaved: list[Bar] = []
        self.learned_upto = 0  # the number of the last bar a learn took
        self.number = self._first_free("bar-*.mid")
        self.model_number = self._first_free("model-*.pt")
        self.learner: Learner | None = None
        self.job: dict | None = None  # the job in training: id, bars, the request's time
        self.swapped: dict | None = None  # the model swapped in, until its first pattern plays
        self.view = LearnView(model=ckpt)
        self.state, self.problem = "", ""
        self._seen = (0, 0, 0)  # learn, undo, find request counters handled
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_play: dict = {}  # the last learn's figures, for the benchmark and tests

    def hear(self, msg: mido.Message, stamp: float) -> None:
        self.capture.hear(msg, stamp)

    def _first_free(self, pattern: str) -> int:
        taken = [int(p.stem.split("-")[1]) for p in self.folder.glob(pattern) if p.stem.split("-")[1].isdigit()]
        return max(taken, default=0) + 1

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        st = self.controls.get()
        self._seen = (st.learn, st.undo, st.find)
        self._start_learner()
        self._thread = threading.Thread(target=self.run, name="rvae-learn", daemon=True)
        self._thread.start()

    def _start_learner(self) -> None:
        path = self.models[-1].path
        self.learner = Learner(path) if path is not None else None
        if self.learner is not None:
            logger.info("learner process pid %d, warming up", self.learner.pid)

    def stop(self) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(5.0)
        self._keep(self.capture.flush())
        if self.learner is not None:
            self.learner.close()
        if self.unsaved:
            self.say(f"{len(self.unsaved)} captured bars could not be saved in {self.folder}: {self.problem}")
        if self._new_folder:
            try:
                self.folder.rmdir()  # only if empty: nothing was played, nothing learned
            except OSError:
                pass

    def run(self) -> None:
        while not self.stop_event.wait(POLL):
            try:
                self.turn()
            except Exception:
                logger.exception("learning: a turn failed; capture goes on")

    # --- one turn ------------------------------------------------------------------------

    def turn(self) -> None:
        self._keep(self.capture.take(self.player_view().beat))
        st = self.controls.get()
        learn, undo, find = self._seen
        if st.learn != learn:
            self.learn(st.learn_bars or None, seen=time.perf_counter())
        if st.undo != undo:
            self.undo()
        if st.find != find:
            self.find()
        self._seen = (st.learn, st.undo, st.find)
        self._answers()
        self._playing_yet()
        self._publish()

    def _keep(self, grooves: list[Groove]) -> None:
        for g in grooves:
            path = self.folder / f"bar-{self.number:04d}.mid"
            bar = Bar(self.number, replace(g, bpm=self.player_view().bpm, file=str(path), bar=1), False)
            self.number += 1
            self.held.append(bar)
            self.unsaved.append(bar)
        if grooves:
            self._save()

    def _save(self) -> None:
        """Write the bars not yet on disk, oldest first; on failure keep them and say so."""
        while self.unsaved:
            bar = self.unsaved[0]
            try:
                write_midi([bar.groove], bar.groove.file, ticks_per_quarter=TPQ)
            except OSError as e:
                self.problem = f"cannot save captured bars in {self.folder} ({e.strerror or e}); kept in memory"
                logger.warning("learning: %s", self.problem)
                return
            self.unsaved.pop(0)
            self._mark_saved(bar)
        self.problem = ""

    def _mark_saved(self, bar: Bar) -> None:
        self.held = collections.deque(
            (replace(b, saved=True) if b.number == bar.number else b for b in self.held), maxlen=HELD
        )

    def _tell(self, text: str) -> None:
        self.state = text
        self.say(text)

    def selection(self, bars: int | None = None) -> list[Bar]:
        """The bars a learn takes: the last ``bars`` held, or those since the last learn (at most MAX_NEW)."""
        if bars is not None:
            return list(self.held)[-bars:] if bars > 0 else []
        return [b for b in self.held if b.number > self.learned_upto][-MAX_NEW:]

    def learn(self, bars: int | None = None, seen: float | None = None) -> None:
        seen = time.perf_counter() if seen is None else seen
        model = self.models[-1]
        chosen = self.selection(bars)
        if self.job is not None:
            return self._tell(f"still learning {len(self.job['bars'])} bars; one learn at a time")
        if not chosen:
            where = f" into {self.source}" if self.source else ""
            return self._tell(f"nothing to learn yet: play a bar or more{where} while the clock runs, then learn")
        if not model.keeps_loops:
            name = model.path.name if model.path else "this model"
            return self._tell(f"{name} was trained with --no-keep-loops, so it cannot learn more: train it without")
        if self.learner is None or self.learner.proc.poll() is not None:
            self._start_learner()
        if self.learner is None:
            return self._tell("this model has no file for the learner to start from; save it first")
        out = self.folder / f"model-{self.model_number:02d}.pt"
        self._save()  # what was played is on disk before training sees it, if the disk lets us
        loops = _loops_json([b.groove for b in chosen])
        job = {"id": self.model_number, "base": str(model.path), "out": str(out), "loops": loops}
        if not self.learner.submit(job):
            return self._tell("learning failed: the training process is gone; a new one is starting")
        self.model_number += 1
        self.learned_upto = max(self.learned_upto, chosen[-1].number)
        self.job = {"id": job["id"], "bars": [b.number for b in chosen], "asked": seen, "sent": time.perf_counter()}
        self._tell(f"learning {len(chosen)} bars ({chosen[0].number}-{chosen[-1].number}) in the background")

    def _answers(self) -> None:
        learner = self.learner
        while learner is not None and learner.replies:
            reply = learner.replies.popleft()
            if "died" in reply:
                code = reply["died"]
                how = f"was killed by signal {-code}" if code < 0 else f"exited with status {code}"
                if self.job is not None:
                    self._tell(
                        f"learning failed: the training process {how}; the old model plays on, "
                        f"the captured bars are kept in {self.folder}"
                    )
                    self.learned_upto = min(self.learned_upto, self.job["bars"][0] - 1)  # l learns them again
                self.job = None
                self._start_learner()
                return
            if self.job is None or reply.get("id") != self.job["id"]:
                continue
            job, self.job = self.job, None
            if "error" in reply:
                self.learned_upto = min(self.learned_upto, job["bars"][0] - 1)
                self._tell(f"learning failed: {reply['error']}; the old model plays on")
                continue
            try:
                new = load_checkpoint(reply["path"])
            except Exception as e:  # a file the learner wrote and we cannot read: say so, play on
                self._tell(f"learning failed: cannot read {reply['path']} ({e}); the old model plays on")
                continue
            job["loaded"] = time.perf_counter()
            self._swap(new, len(job["bars"]), job, reply)

    def _swap(self, new: Checkpoint, n_new: int, job: dict, reply: dict) -> None:
        self.models.append(new)
        serial = self.worker.serial  # before the swap: the new model's patterns come after it
        self.worker.set_model(new)
        self.on_model(new)
        if self.follow and new.latents is not None and len(new.latents) >= n_new:
            z = np.asarray(new.latents)[-n_new, :2]
            self.controls.update(z=(round(float(z[0]), 4), round(float(z[1]), 4)))
        self.swapped = {"job": job, "reply": reply, "model": new, "serial": serial}
        self.state = f"learned {len(job['bars'])} bars in {reply['seconds']:.1f} s: {new.path.name if new.path else ''}"

    def _playing_yet(self) -> None:
        """Once the new model's first pattern plays, say so with the time since the request."""
        s = self.swapped
        if s is None:
            return
        p = self.player_view().pattern
        if p is None or p.serial <= s["serial"] or self.worker.ckpt is not s["model"]:
            return
        # the sequencer has taken it, to play from a bar line (the swap of a new model)
        v = self.player_view()
        qpb = float(p.grid.quarters_per_bar)
        line = v.pattern_from if math.isfinite(v.pattern_from) else math.ceil(v.beat / qpb) * qpb
        at = time.perf_counter() + (line - v.beat) * 60.0 / max(v.bpm, 1e-6)
        self.swapped = None
        job, reply = s["job"], s["reply"]
        waited = at - job["asked"]
        self.last_play = {"seconds": waited, "train_seconds": reply["seconds"], "at": at}
        # where the time went, for scripts/bench_learn.py (seconds, perf_counter differences)
        arrived = reply.get("arrived", job.get("loaded", at))
        parts = {
            "request_to_sent": job["sent"] - job["asked"],  # the turn's poll, saving the bars
            "learner": arrived - job["sent"],  # the child's whole answer: training, writing, the pipe
            "train": reply.get("train_s"),
            "write": reply.get("write_s"),
            "updates": reply.get("updates"),
            "train_cpu": reply.get("cpu_s"),
            "learner_waited_for_cpu": reply.get("waited_for_cpu_s"),
            "load": job.get("loaded", arrived) - arrived,  # reading the checkpoint here, the next turn's poll
            "decode_and_bar_line": at - job.get("loaded", arrived),  # the new pattern, the wait for the bar line
            "total": waited,
        }
        logger.info("learn timing %s", json.dumps({k: v if v is None else round(v, 4) for k, v in parts.items()}))
        self._tell(
            f"{s['model'].path.name if s['model'].path else 'the new model'} plays from bar {round(line / qpb) + 1}, "
            f"{waited:.2f} s after the request (training {s['reply']['seconds']:.2f} s; "
            f"at perf_counter {at:.6f})"
        )

    def undo(self) -> None:
        if len(self.models) < 2:
            return self._tell("nothing to undo: this is the model the performance started with")
        gone = self.models.pop()
        self.worker.set_model(self.models[-1])
        self.on_model(self.models[-1])
        self.swapped = None
        name = self.models[-1].path.name if self.models[-1].path else "the first model"
        self._tell(f"back to {name} ({gone.path.name if gone.path else 'the learned model'} stays on disk)")

    def find(self) -> None:
        if not self.held:
            return self._tell("nothing played to find yet")
        from rvae.latent import encode

        bar = self.held[-1]
        z = encode(self.models[-1], [bar.groove])[0]
        self.controls.update(z=(round(float(z[0]), 4), round(float(z[1]), 4)))
        self._tell(f"found bar {bar.number} at z ({z[0]:+.2f}, {z[1]:+.2f})")

    def _publish(self) -> None:
        self.view = LearnView(
            bars=tuple(self.held),
            selected=len(self.selection()),
            unmapped=self.capture.unmapped,
            state=self.state,
            problem=self.problem,
            model=self.models[-1],
            models=len(self.models),
            learning=self.job is not None,
        )


if __name__ == "__main__":
    _serve(sys.argv[1], sys.stdin, sys.stdout)
