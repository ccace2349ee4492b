"""Running an experiment's runs as Ray tasks, on a local Ray or on a cluster.

``rvae experiment study.toml --ray [ADDRESS]``: the runner decides what to run and writes
every result, as with the local pool; this backend only executes ``run_one`` for each run,
one task per run (one CPU, one torch thread; one GPU when ``device = "cuda"``).

- ADDRESS: none starts a local Ray with ``jobs`` CPUs (and stops it after); ``auto`` joins
  the cluster this machine belongs to (``ray start --head`` / ``ray up``); ``HOST:PORT`` a
  head node's GCS; ``ray://HOST:10001`` Ray Client. A Ray already initialised in this
  process (a test's ``ray.init(num_cpus=2)``) is used as it is and left running.
- Data travels by path: every node must see the config's data at the same absolute path (a
  shared filesystem: NFS, a mounted bucket, the same container image). A run whose files
  are missing on its node is a failed row naming the path and the node. With
  ``ship_data`` the driver reads the files once, puts them in Ray's object store, and
  each task writes them to a temporary folder of its own: no shared filesystem needed.
- A task lost with its worker or node is retried once by Ray (``max_retries=1``); lost
  again, it is a failed row with Ray's reason. Ctrl-C cancels the tasks not yet finished
  and re-raises; rows already written stay, and the next call resumes.
- The workers need rvae (and torch) installed, the same version as the driver: Ray pickles
  ``run_one`` by reference.

Ray is an optional extra (``pip install 'rvae[ray]'``), imported only here and only when
asked for.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from rvae.errors import UserError
from rvae.experiment.runner import Run, failed_row, run_one

__all__ = ["INSTALL", "RayBackend", "check_address"]

INSTALL = "--ray needs Ray, an optional extra: pip install 'rvae[ray]'"
CONNECT_TIMEOUT = 5.0  # seconds to wait for a head node to answer before saying it does not

logger = logging.getLogger(__name__)


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL) from None
    return ray


def check_address(address: str, timeout: float = CONNECT_TIMEOUT) -> None:
    """Raise a UserError unless something listens at a HOST:PORT or ray://HOST:PORT address
    (Ray itself waits 30 s or more before giving up on one that does not answer)."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        raise UserError(
            f"--ray {address}: not a Ray address (HOST:PORT, ray://HOST:10001 or auto; none starts a local Ray)"
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise UserError(f"--ray {address}: no Ray cluster answers there ({reason}), so nothing was run") from None


def _node() -> str:
    try:
        import ray

        ip = ray.util.get_node_ip_address()
    except Exception:  # outside Ray (a direct call in a test): the host name alone
        ip = "?"
    return f"{socket.gethostname()} ({ip})"


def _task(fn: Callable[[Run, bool], dict], run: Run, generation: bool, shipped: dict[str, bytes] | None) -> dict:
    """What a Ray worker executes for one run: ``fn`` (run_one) on the run's files, either at
    their paths or written from ``shipped`` to a folder of the task's own."""
    import torch

    torch.set_num_threads(1)  # one CPU per task, as one worker process of the local pool
    t0 = time.perf_counter()
    files = [*run.train_files, *run.test_files]
    if shipped is None:
        missing = [f for f in files if not os.path.exists(f)]
        if missing:
            more = f" and {len(missing) - 1} more of the run's {len(files)} files" if len(missing) > 1 else ""
            return failed_row(
                run,
                f"data missing on node {_node()}: {missing[0]}{more} (data travels by path)",
                time.perf_counter() - t0,
            )
        return fn(run, generation)
    with tempfile.TemporaryDirectory(prefix="rvae-run-") as tmp:
        # One folder per file, numbered in the order of the original paths: names stay the
        # same (the run's id hashes them) and any subset sorts as the originals do.
        order = {f: i for i, f in enumerate(sorted(shipped))}
        local = {}
        for f in files:
            path = Path(tmp, f"{order[f]:06d}", Path(f).name)
            path.parent.mkdir()
            path.write_bytes(shipped[f])
            local[f] = str(path)
        moved = replace(
            run,
            train_files=tuple(local[f] for f in run.train_files),
            test_files=tuple(local[f] for f in run.test_files),
        )
        return fn(moved, generation) | {"id": run.id}


@dataclass
class RayBackend:
    """Executes runs as Ray tasks (see the module's docstring). ``fn`` is what a task calls,
    run_one unless a test says otherwise."""

    address: str | None = None  # None: a local Ray of ``num_cpus`` CPUs
    num_cpus: int | None = None
    ship_data: bool = False
    fn: Callable[[Run, bool], dict] = run_one
    started: bool = False  # this backend started Ray (a local one, or the connection): it stops it

    def where(self, n: int) -> str:
        return f"Ray ({self.address or 'local'}, one task per run)"

    def connect(self) -> None:
        """Join or start Ray, unless it runs in this process already. A bad or silent address
        is a UserError before anything runs."""
        ray = _import_ray()
        if self.address not in (None, "auto", "local"):
            check_address(self.address)
        if ray.is_initialized():
            return
        try:
            if self.address in (None, "local"):
                ray.init(
                    address="local",
                    num_cpus=self.num_cpus,
                    include_dashboard=False,
                    logging_level=logging.WARNING,
                    log_to_driver=False,
                )
            else:
                ray.init(address=self.address, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as e:
            if self.address == "auto":
                raise UserError(
                    "--ray auto: no Ray cluster runs on this machine (start one with `ray start --head`, or give "
                    "its address), so nothing was run"
                ) from None
            reason = str(e).strip().splitlines()[0].rstrip(".") if str(e).strip() else type(e).__name__
            raise UserError(
                f"--ray {self.address}: cannot join a Ray cluster there ({reason}), so nothing was run"
            ) from None
        self.started = True

    def execute(self, runs: list[Run], generation: bool, finish: Callable[[dict], None]) -> None:
        ray = _import_ray()
        self.connect()
        try:
            self._execute(ray, runs, generation, finish)
        finally:
            if self.started:
                ray.shutdown()
                self.started = False

    def _execute(self, ray, runs: list[Run], generation: bool, finish: Callable[[dict], None]) -> None:
        shipped = None
        if self.ship_data:
            names = sorted({f for r in runs for f in (*r.train_files, *r.test_files)})
            shipped = ray.put({f: Path(f).read_bytes() for f in names})
        task = ray.remote(_task)
        pending: dict = {}
        for run in runs:
            gpus = 1 if run.settings.get("device") == "cuda" else 0
            ref = task.options(num_cpus=1, num_gpus=gpus, max_retries=1, retry_exceptions=False).remote(
                self.fn, run, generation, shipped
            )
            pending[ref] = (run, time.perf_counter())
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    run, t0 = pending.pop(ref)
                    finish(self._row(ray, ref, run, t0))
        except BaseException:
            for ref in pending:  # queued ones never start; running ones are stopped
                ray.cancel(ref, force=True)
            raise

    @staticmethod
    def _row(ray, ref, run: Run, t0: float) -> dict:
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError as e:  # the task itself raised (run_one never does)
            cause = e.cause if isinstance(e.cause, BaseException) else e
            return failed_row(run, f"{type(cause).__name__}: {cause} (on Ray)", time.perf_counter() - t0)
        except ray.exceptions.RayError as e:  # worker or node lost, twice: Ray retried once
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return failed_row(
                run, f"lost on Ray after one retry: {type(e).__name__}: {first}", time.perf_counter() - t0
            )
