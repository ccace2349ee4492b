"""Training a GrooveVAE on a Dataset, and the one call that goes from folders to a checkpoint."""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

from rvae.checkpoint import Checkpoint, TrainSummary, extent_of, load_checkpoint, save_checkpoint
from rvae.dataset import DataConfig, Dataset, find_midi_files, load_dataset, load_loops
from rvae.errors import ConfigError, UserError, check_at_least, check_between
from rvae.groove import Groove, pack_hits, stack
from rvae.metrics import onset_scores
from rvae.model import BETA, GrooveVAE, VAEConfig, total_loss
from rvae.text import counted

__all__ = [
    "NoDataError",
    "TrainConfig",
    "continue_files",
    "continue_training",
    "continue_updates",
    "train",
    "train_files",
]

logger = logging.getLogger(__name__)


# From scratch with no files held out (small data): the defaults study's peak learning rate
# and KL warm-up (README; beta is rvae.model.BETA). With files held out (200 loops or more)
# training is as it was measured at scale: beta 0.2, 0.01, warm-up 0.3 (scripts/bench_train.py
# full, one thread: held-out onset F1 0.171, 0.175 on the code before; 0.144 with beta 1, warm-up 0.15).
BETA_HELD_OUT = 0.2
LR = 0.0015
WARMUP, WARMUP_HELD_OUT = 0.15, 0.3  # KL warm-up, a share of the planned updates
FAST_LR = 0.01  # continuing (100-300 updates must learn new loops), or a set large enough to hold files out
PASSES = 4000  # the automatic plan: each loop seen this many times...
MAX_UPDATES = 8000  # ...in at most this many optimiser steps, stopping once the loops fit (fit_f1)
MAX_UPDATES_HELD_OUT = 4000  # with files held out, which choose the model: more did not help


class NoDataError(UserError):
    """Nothing usable to train on; the message says why."""


@dataclass
class TrainConfig:
    epochs: int | None = None  # None: from `updates`
    updates: int | None = field(
        default=None,
        metadata={
            "help": "optimiser steps, rounded up to whole epochs; not with --epochs "
            "(default: None: each loop seen up to 4000 times in at most 8000 steps, 4000 with files held out; "
            "with --init 3 a loop, 100 to 300; --fit-f1 may stop it sooner)"
        },
    )
    # A space that copies less (the defaults study, README): fitting the loops sharper than
    # this makes whole regions of the space play one training loop unchanged.
    fit_f1: float = field(
        default=0.955,
        metadata={
            "help": "with no files held out: stop once the training loops' onset F1 through the mean of z "
            "reaches this, after the KL warm-up; 0 trains every update; not with --init (default: 0.955)"
        },
    )
    max_seconds: float | None = None  # stop early (keeping the best) after this long
    batch_size: int = 64  # at most: an epoch is split into equal batches of up to this many loops
    lr: float | None = field(
        default=None,
        metadata={
            "help": f"peak learning rate (default: None: {LR} from scratch, {FAST_LR} when continuing "
            "from a model or when files are held out)"
        },
    )
    kl_warmup: float | None = field(
        default=None,
        metadata={
            "help": f"share of the planned updates over which beta ramps up from 0 (default: None: {WARMUP} "
            f"from scratch, {WARMUP_HELD_OUT} when files are held out; none with --init)"
        },
    )
    latent_noise: float = field(
        default=0.0,
        metadata={
            "help": "standard deviation of extra Gaussian noise added to z while training, "
            "so each loop is played from a wider patch of the space (default: 0.0: none)"
        },
    )
    val_fraction: float = 0.1  # files held out for validation loss...
    min_val_loops: int = 200  # ...only when there are this many loops: small sets need every loop
    patience: int = 50  # with validation: stop after this many epochs without a better validation loss
    seed: int = 0
    device: str = "cpu"
    # torch threads while training. One: on a busy machine every extra thread waits on the
    # others (2 cores under load: the small set 6.8 s with one thread, 19.5 s with two; with
    # two busy loops alongside, 9.5 s and 31.9 s), one leaves a core to the DAW or the
    # performer, and the run does not depend on the load. Idle, two are ~1.6x faster: --threads 2.
    threads: int = 1
    # The checkpoint keeps its training loops, hits only (~8 bytes a hit: the bundled 4/4
    # model's 93 loops take ~25 kB beside 3.5 MB of weights), so training can continue from it
    # on them plus new ones (continue_training, --init). A TrainConfig field, not a DataConfig
    # one: it decides what training writes, not how files are read (a continuation reuses
    # its base's DataConfig to read new files, and a Dataset made by hand has none).
    keep_loops: bool = field(
        default=True,
        metadata={
            "help": "store no training loops in the checkpoint: smaller, but it cannot then be given to --init "
            "(default: True: they are kept)"
        },
    )

    def __post_init__(self) -> None:
        check_at_least(self, 1, "epochs", "updates", "batch_size", "threads")
        check_at_least(self, 0, "max_seconds", "lr", "min_val_loops", "patience", "seed", "latent_noise")
        check_between(self, 0, 1, "fit_f1")
        if self.epochs is not None and self.updates is not None:
            raise ConfigError("updates", self.updates, "cannot be given with epochs: give one of them")
        check_between(self, 0, 1, "kl_warmup")
        if not 0 <= self.val_fraction < 1:  # 1 would hold out every file and train on none
            raise ConfigError("val_fraction", self.val_fraction, "must be at least 0 and below 1")


def _split(ds: Dataset, cfg: TrainConfig, rng: np.random.Generator) -> tuple[list[int], list[int]]:
    """Indices of training and validation loops, split by file so no file is on both sides."""
    n = len(ds.loops)
    if n < cfg.min_val_loops or cfg.val_fraction <= 0:
        return list(range(n)), []
    files = sorted({g.file for g in ds.loops})
    n_val = max(1, round(len(files) * cfg.val_fraction))
    if len(files) < 5:  # too few files to hold one out: fall back to loops
        held = set(rng.permutation(n)[: max(1, round(n * cfg.val_fraction))].tolist())
    else:
        val_files = set(rng.permutation(files)[:n_val].tolist())
        held = {i for i, g in enumerate(ds.loops) if g.file in val_files}
    return [i for i in range(n) if i not in held], sorted(held)


def auto_epochs(copies: int, per_epoch: int, held_out: bool = False) -> int:
    """Epochs planned when no count is given: each loop seen ``PASSES`` times however often a
    small set is duplicated (``copies``), in at most ``MAX_UPDATES`` steps of ``per_epoch`` an
    epoch. A plan, not a promise: with no files held out, training stops once the loops fit
    (``TrainConfig.fit_f1``): a dozen loops after ~900 passes, 62 one-bar loops after ~1700
    (the defaults study), the bundled 4/4 model's 93 after 3530 updates of its planned 8000
    (the one-cycle rate anneals over the plan: planned 4000, it fit only to 0.92). With files
    held out the validation loss chooses the model, in at most ``MAX_UPDATES_HELD_OUT``: on the
    Groove subset at 24 steps per quarter, 1 bar (12,803 training loops, seed 0, a third of the
    files held out), 8,000 updates instead of 4,000 gave training onset F1 0.206 against 0.221
    and held-out 0.145 against 0.144 (at peak learning rate 0.01, beta 0.2)."""
    cap = MAX_UPDATES_HELD_OUT if held_out else MAX_UPDATES
    return max(1, min(math.ceil(PASSES / copies), cap // per_epoch))


@torch.no_grad()
def _fit_f1(model: GrooveVAE, x: torch.Tensor) -> float:
    """Onset F1 of the loops ``x`` through the mean of their z, as rvae.metrics.evaluate."""
    model.eval()
    probs = model.decode(model.encode(x)[0])
    model.train()
    return onset_scores((probs[:, 0] >= 0.5).float().cpu().numpy(), x[:, 0].cpu().numpy())[2]


@torch.no_grad()
def _evaluate(model: GrooveVAE, x: torch.Tensor, gen: torch.Generator) -> dict[str, float]:
    model.eval()
    parts = model.loss(x, generator=gen)
    model.train()
    return {k: float(v) for k, v in parts.items()}


NEW_SHARE = 0.25  # continue_training: the new loops are repeated to fill about this share of each epoch


def continue_updates(loops: int) -> int:
    """Optimiser steps when training continues from a model: it knows the old loops already,
    so 3 a loop, at least 100, at most 300. The bundled 4/4 model's 93 loops + 8 new bars
    (the first 8 of a GMD hip-hop take; base onset F1 on the old loops 0.956, on the new 0.14;
    the new loops a quarter of each epoch, one thread, quiet machine): 202 updates (2 a loop,
    the rule for the model of the earlier defaults, whose base fit 0.998) leave old 0.930 /
    new 0.928; 240, 0.94 / 0.96-0.97; 300 (this rule's), 0.95-0.96 / 1.0 in ~5 s (17 ms an
    update). The fast rate (FAST_LR) first shakes a base that stopped at its fit, then settles."""
    return int(min(300, max(100, 3 * loops)))


def train(
    ds: Dataset,
    model_config: VAEConfig | None = None,
    cfg: TrainConfig | None = None,
    progress: bool = True,
    init: Checkpoint | None = None,
    new_share: tuple[int, float] = (0, 0.0),
) -> Checkpoint:
    """Train on the dataset's loops; returns a Checkpoint holding the best model seen.

    With ``init``, training continues from that checkpoint's weights (its model config; the
    dataset must be on its grid and kit): ``continue_updates`` steps unless ``cfg.epochs`` or
    ``cfg.updates``, beta at full weight from the start (no warm-up: the space is laid out
    already), and no loop held out (every loop, the new ones above all, must be learnt). ``new_share`` = (n,
    share): the last n loops are repeated to fill about that share of each epoch, so that a few
    new loops are learnt in few updates (continue_training's)."""
    cfg = cfg or TrainConfig()
    before = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _fit(ds, model_config, cfg, progress, init, new_share)
    finally:
        torch.set_num_threads(before)  # the caller's setting, for whatever it runs next


def _fit(
    ds: Dataset,
    model_config: VAEConfig | None,
    cfg: TrainConfig,
    progress: bool,
    init: Checkpoint | None = None,
    new_share: tuple[int, float] = (0, 0.0),
) -> Checkpoint:
    if not ds.loops:
        raise NoDataError("no usable loops to train on")
    if init is not None:
        if ds.grid != init.grid or ds.kit.names != init.kit.names:
            raise UserError(
                f"the loops are on {ds.grid.meter} x {ds.grid.steps} steps with kit {ds.kit.name!r}, the model "
                f"{init.path or ''} on {init.grid.meter} x {init.grid.steps} with kit {init.kit.name!r}"
            )
        mc = init.model.config
        # a continuation counts its own updates: the old loops fit already
        cfg = dataclasses.replace(cfg, kl_warmup=0.0, val_fraction=0.0, fit_f1=0.0)
    else:
        mc = dataclasses.replace(model_config or VAEConfig(), instruments=len(ds.kit), steps=ds.grid.steps)
    if cfg.device != "cpu" and not (cfg.device.startswith("cuda") and torch.cuda.is_available()):
        raise UserError(f"device {cfg.device!r} is not available here; use --device cpu")
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    train_idx, val_idx = _split(ds, cfg, rng)
    # What depends on the case, set once and recorded in the checkpoint as it ran: small data
    # (the defaults study), files held out (as measured at scale), or a continuation (above).
    if mc.beta is None:
        mc = dataclasses.replace(mc, beta=BETA_HELD_OUT if val_idx else BETA)
    if cfg.kl_warmup is None:
        cfg = dataclasses.replace(cfg, kl_warmup=WARMUP_HELD_OUT if val_idx else WARMUP)
    lr = cfg.lr if cfg.lr is not None else FAST_LR if init is not None or val_idx else LR
    cfg = dataclasses.replace(cfg, lr=lr)
    if val_idx:  # the validation loss chooses the model: no fit stop
        cfg = dataclasses.replace(cfg, fit_f1=0.0)
    data = torch.from_numpy(stack(ds.loops))  # (N, 3, instruments, steps)
    x_train = data[train_idx].repeat(ds.copies, 1, 1, 1)
    new, share = new_share
    if new and share > 0:  # the last `new` loops repeated until they are about `share` of an epoch
        times = max(0, round(share * len(x_train) / (new * (1 - share))) - ds.copies)
        x_train = torch.cat([x_train, data[-new:].repeat(times, 1, 1, 1)])
    x_train = x_train.to(cfg.device)
    x_fit = data[train_idx].to(cfg.device)  # each training loop once: how well they fit
    x_val = data[val_idx].to(cfg.device) if val_idx else None

    model = GrooveVAE(mc)
    if init is not None:
        model.load_state_dict(init.model.state_dict())
    model = model.to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(x_train)
    per_epoch = math.ceil(n / min(cfg.batch_size, n))
    # Equal batches: 70 rows (14 loops x 5) are two of 35, not one of 64 and a stray one of 6
    # whose noisy step counts as a full update.
    batch = math.ceil(n / per_epoch)
    if cfg.epochs:
        epochs = cfg.epochs
    elif cfg.updates or init is not None:
        epochs = max(1, math.ceil((cfg.updates or continue_updates(len(ds.loops))) / per_epoch))
    else:
        epochs = auto_epochs(ds.copies, per_epoch, held_out=x_val is not None)
    total = epochs * per_epoch
    warmup = max(1, int((cfg.kl_warmup or 0.0) * total))
    # One cycle: warm up over a tenth of the steps, then anneal. Its warm-up needs two steps
    # at least (a one-step phase divides by zero inside torch); runs under 4 steps keep lr.
    sched = None
    if total >= 4:
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=max(0.1, 2 / total))

    best, best_state, best_epoch, history = math.inf, None, 0, []
    step, t0, stopped = 0, time.perf_counter(), "finished"
    bar = tqdm(
        range(epochs), desc="training", unit="epoch", disable=None if progress else True, leave=False
    )  # None: a bar on a terminal, nothing in logs
    every = max(1, epochs // 10)  # -v: a line every tenth of the run
    logger.info(
        "training on %d loops (%d held out): %d epochs x %d updates, batches of %d",
        len(train_idx),
        len(val_idx),
        epochs,
        per_epoch,
        batch,
    )
    model.train()
    with logging_redirect_tqdm():  # -v lines above the bar, not through it
        try:
            for epoch in bar:
                order = torch.randperm(n, generator=gen)
                sums = dict.fromkeys(("onset_bce", "velocity_se", "offset_se", "kl"), 0.0)
                for rows in torch.tensor_split(order, per_epoch):
                    xb = x_train[rows]
                    parts = model.loss(
                        xb, kl_weight=min(1.0, step / warmup), generator=gen, latent_noise=cfg.latent_noise
                    )
                    opt.zero_grad(set_to_none=True)
                    parts["loss"].backward()
                    opt.step()
                    if sched is not None:
                        sched.step()
                    step += 1
                    for k in sums:
                        sums[k] += float(parts[k].detach()) * len(xb) / n
                # at full beta, so that epochs compare whatever the warm-up
                train_loss = total_loss(sums, mc)
                val_loss = total_loss(_evaluate(model, x_val, gen), mc) if x_val is not None else None
                monitor = val_loss if val_loss is not None else train_loss
                # Small data: we expect to overfit, so keep the best epoch (after warm-up), not the last.
                if step >= warmup and monitor < best:
                    best, best_epoch = monitor, epoch + 1
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                history.append(round(train_loss, 3))
                bar.set_postfix(
                    loss=f"{train_loss:.2f}", **({"val": f"{val_loss:.2f}"} if val_loss is not None else {})
                )
                if (epoch + 1) % every == 0:
                    logger.info(
                        "epoch %d/%d: loss %.3f%s, lr %.2g",
                        epoch + 1,
                        epochs,
                        train_loss,
                        f", validation loss {val_loss:.3f}" if val_loss is not None else "",
                        opt.param_groups[0]["lr"],
                    )
                if cfg.fit_f1 and step >= warmup and (f1 := _fit_f1(model, x_fit)) >= cfg.fit_f1:
                    best, best_epoch = train_loss, epoch + 1
                    best_state = None  # the model as it is now, not the best loss so far
                    stopped = f"fit: the training loops' onset F1 {f1:.3f} reached {cfg.fit_f1} at epoch {epoch + 1}"
                    break
                if cfg.max_seconds and time.perf_counter() - t0 > cfg.max_seconds:
                    stopped = f"time limit after epoch {epoch + 1}"
                    break
                if x_val is not None and best_epoch and epoch + 1 - best_epoch >= cfg.patience:
                    stopped = f"validation loss flat for {cfg.patience} epochs"
                    break
        except KeyboardInterrupt:
            stopped = f"interrupted after {len(history)} epochs"
    bar.close()
    seconds = time.perf_counter() - t0
    if best_state is not None:
        model.load_state_dict(best_state)
    elif history:  # stopped during warm-up: the last epoch is all there is
        best, best_epoch = history[-1], len(history)
    if stopped.startswith("fit: "):
        logger.info("stopped, %s", stopped.removeprefix("fit: "))
    elif stopped != "finished":
        logger.info("stopped early (%s), keeping the best model: epoch %d", stopped, best_epoch)
    model.eval()
    with torch.no_grad():
        latents = model.encode(data.to(cfg.device))[0].cpu()  # (N, latent) means
    summary = TrainSummary(
        data=ds.to_dict(),
        train_loops=len(train_idx),
        val_loops=len(val_idx),
        epochs=len(history),
        updates=step,
        continued_from=str(init.path or "a checkpoint in memory") if init is not None else "",
        best_epoch=best_epoch,
        best_loss=round(best, 4) if math.isfinite(best) else None,
        monitored="validation" if x_val is not None else "training",
        seconds=round(seconds, 2),
        stopped=stopped,
        loss_history=history,
        params=model.n_params(),
        trained_at=time.strftime("%Y-%m-%d %H:%M:%S"),
        torch=str(torch.__version__),
    )
    # The data config travels with the model: ``rvae eval`` drops loops by its min_onsets as training did.
    if init is not None:  # a continuation reads as its base did
        data_config = dict(init.data_config)
    else:
        data_config = asdict(ds.config) | {"time_signature": ds.grid.meter} if ds.config else {}
    return Checkpoint(
        model.cpu(),
        ds.grid,
        ds.kit,
        data_config,
        asdict(cfg),
        summary,
        latents,
        [g.source for g in ds.loops],
        kept=pack_hits(ds.loops) if cfg.keep_loops else None,
        extent=extent_of(latents),
    )


def train_files(
    paths: list[str | Path],
    out: str | Path | None,
    data_config: DataConfig | None = None,
    model_config: VAEConfig | None = None,
    cfg: TrainConfig | None = None,
    progress: bool = True,
    report=None,
) -> Checkpoint:
    """Folders of MIDI -> trained checkpoint, written atomically to ``out`` when given.

    ``report(line)`` receives each skipped file and the dataset summary, as they are known."""
    data_config = data_config or DataConfig()
    files, problems = find_midi_files(list(paths))
    if not files:  # nothing to read: one sentence, not a summary of zeros
        raise NoDataError("no MIDI files to train on: " + "; ".join(f"{p} {reason}" for p, reason in problems))
    ds = load_dataset(paths, data_config)
    if report:
        for line in ds.lines():
            report(line)
        report(ds.summary())
    if not ds.loops:
        raise NoDataError(f"no usable loops in {', '.join(map(str, paths))}: every file was skipped or too sparse")
    ckpt = train(ds, model_config, cfg, progress)
    if out is not None:
        ckpt.path = save_checkpoint(ckpt, out)
    return ckpt


def continue_training(
    ckpt: Checkpoint, new_loops: list[Groove], cfg: TrainConfig | None = None, progress: bool = False
) -> Checkpoint:
    """Train on from ``ckpt``'s weights on its own training loops plus ``new_loops`` (Grooves
    on its grid and kit); returns the new Checkpoint (not written: ``save_checkpoint``), which
    keeps all the loops, old then new, and records that it continued from ``ckpt``.

    ~100 loops + 8 new bars take ``continue_updates`` = 300 updates (see there for the figures);
    the performer's learn on stage calls this in a child process with fewer when the new bars
    repeat a groove (performer.learn.stage_updates: 80 for one groove). Raises UserError when
    ``ckpt`` kept no loops (trained with keep_loops=False) or a new loop is on another grid or kit."""
    old = ckpt.training_loops()
    ckpt.check_fits(new_loops, "a new loop")
    if not new_loops:
        raise NoDataError("no new loops to learn")
    loops = old + list(new_loops)
    min_loops = int(ckpt.data_config.get("min_loops", DataConfig.min_loops))
    ds = Dataset(ckpt.grid, ckpt.kit, loops=loops, meter_note="the model's")
    if len(loops) < min_loops:  # duplicated as training the base did
        ds.copies = -(-min_loops // len(loops))
    out = train(ds, cfg=cfg, progress=progress, init=ckpt, new_share=(len(new_loops), NEW_SHARE))
    out.summary.data = {"loops": len(loops), "loops_before": len(old), "new_loops": len(new_loops)} | {
        k: v for k, v in ds.to_dict().items() if k in ("copies", "meter")
    }
    return out


def continue_files(
    init: str | Path | Checkpoint,
    paths: list[str | Path],
    out: str | Path | None,
    cfg: TrainConfig | None = None,
    progress: bool = True,
    report=None,
) -> Checkpoint:
    """``rvae train --init``: MIDI files and folders read on ``init``'s grid and kit, as its
    training read them (its min_onsets, all_channels, force_meter), then ``continue_training``;
    written atomically to ``out`` when given. ``report(line)`` receives each file skipped
    (another meter, too sparse, not drums...) and a summary."""
    ckpt = init if isinstance(init, Checkpoint) else load_checkpoint(init)
    ckpt.training_loops()  # a checkpoint that cannot continue says so before any file is read
    files, problems = find_midi_files(list(paths))
    if not files:
        raise NoDataError("no MIDI files to learn: " + "; ".join(f"{p} {reason}" for p, reason in problems))
    dc = ckpt.data_config
    ds = load_loops(
        paths,
        ckpt.grid,
        ckpt.kit,
        force_meter=bool(dc.get("force_meter", False)),
        min_onsets=ckpt.min_onsets,
        all_channels=ckpt.all_channels,
    )
    if report:
        hint = f" (--force-meter reads it as {ckpt.grid.meter})"  # not an option with --init
        for line in ds.lines():
            report(line.replace(hint, ""))
    if not ds.loops:
        raise NoDataError(
            f"no loop in {', '.join(map(str, paths))} fits the model's {ckpt.grid.meter} grid "
            f"with at least {ckpt.min_onsets} onsets"
        )
    if report:
        report(
            f"continuing from {ckpt.path or 'the checkpoint'}: {ckpt.n_kept_loops} loops it kept "
            f"+ {len(ds.loops)} new from {counted(len(ds.files), 'file')}, on its {ckpt.grid.meter} grid, "
            f"kit {ckpt.kit.name!r}"
        )
    new = continue_training(ckpt, ds.loops, cfg, progress)
    before = ckpt.summary.data
    new.summary.data |= {  # the base's files and these
        "files_read": int(before.get("files_read", 0)) + len(ds.files),
        "files_skipped": int(before.get("files_skipped", 0)) + len(ds.skipped),
    }
    if out is not None:
        new.path = save_checkpoint(new, out)
    return new
