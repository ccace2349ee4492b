"""rvae experiment on Ray: a real local Ray (ray.init(num_cpus=2)) runs a small study with the
same figures as the local pool, resumes after a cancelled call, turns a raising run, a lost
worker and missing data into failed rows; a silent address is one sentence before anything runs."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from rvae.cli import main
from rvae.errors import UserError
from rvae.experiment import load_experiment, run_experiment
from rvae.experiment.runner import LocalPool, Run, expand_runs

ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install 'rvae[ray]'")
from rvae.experiment.ray_backend import RayBackend, check_address  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIX_EIGHT = REPO / "data" / "6-8"

STUDY = f"""
data = ["{SIX_EIGHT}"]
seeds = [3]
folds = 2
jobs = 1
generation = false

[fixed]
epochs = 3
hidden = 16
min_loops = 8

[grid]
steps_per_quarter = [2, 4]
"""

FIGURES = ("heldout_", "train_")


def study(tmp_path: Path, name: str, text: str = STUDY):
    path = tmp_path / f"{name}.toml"
    path.write_text(text)
    return load_experiment(path)


def figures(rows: list[dict]) -> list[list]:
    return [[r["id"], *(r[k] for k in sorted(r) if k.startswith(FIGURES))] for r in rows]


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # The test's own functions travel by value: workers cannot import this test module.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def raises(run: Run, generation: bool) -> dict:
    raise RuntimeError(f"no such thing as fold {run.fold}")


def dies(run: Run, generation: bool) -> dict:
    os._exit(1)  # the worker process vanishes, as with its node


@pytest.mark.slow
def test_ray_gives_the_local_pools_results_and_ships_data_alike(tmp_path, local_ray):
    pooled = run_experiment(study(tmp_path, "pool"), backend=LocalPool(1))
    on_ray = run_experiment(study(tmp_path, "ray"), backend=RayBackend())
    shipped = run_experiment(study(tmp_path, "shipped"), backend=RayBackend(ship_data=True))
    assert pooled.ran == on_ray.ran == shipped.ran == 4
    assert {r["status"] for r in on_ray.rows + shipped.rows} == {"ok"}
    assert "heldout_onset_f1" in on_ray.rows[0]
    for a, b in [(pooled, on_ray), (pooled, shipped)]:
        for ra, rb in zip(figures(a.rows), figures(b.rows), strict=True):
            assert ra[0] == rb[0]
            assert ra[1:] == pytest.approx(rb[1:], abs=1e-6)
    csv_rows = (on_ray.output / "results.csv").read_text().splitlines()
    assert len(csv_rows) == 5 and csv_rows[0] == (pooled.output / "results.csv").read_text().splitlines()[0]


@pytest.mark.slow
def test_a_cancelled_ray_study_keeps_what_finished_and_resumes(tmp_path, local_ray):
    cfg = study(tmp_path, "cancel")
    heard: list[str] = []

    def ctrl_c_after_the_first(line: str) -> None:
        heard.append(line)
        if line.startswith("[1/"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg, report=ctrl_c_after_the_first, backend=RayBackend())
    kept = json.loads((cfg.output / "results.json").read_text())
    assert len(kept) == 1 and kept[0]["status"] == "ok"
    again = run_experiment(load_experiment(cfg.source), backend=RayBackend())
    assert again.ran == 3 and again.skipped == 1
    assert [r["finished_at"] for r in again.rows if r["id"] == kept[0]["id"]] == [kept[0]["finished_at"]]


@pytest.mark.slow
def test_raising_failing_and_lost_runs_are_failed_rows(tmp_path, local_ray):
    text = STUDY.replace("steps_per_quarter = [2, 4]", "min_onsets = [1, 10000]")
    result = run_experiment(study(tmp_path, "fails", text), backend=RayBackend())
    assert [(r["min_onsets"], r["status"]) for r in result.rows] == [(1, "ok")] * 2 + [(10000, "failed")] * 2
    assert all("no training loops" in r["error"] for r in result.rows[2:])

    runs = expand_runs(study(tmp_path, "fn"))[:1]
    rows: list[dict] = []
    RayBackend(fn=raises).execute(runs, False, rows.append)
    assert rows[0]["status"] == "failed" and rows[0]["id"] == runs[0].id
    assert rows[0]["error"] == "RuntimeError: no such thing as fold 0 (on Ray)"

    rows.clear()
    RayBackend(fn=dies).execute(runs, False, rows.append)  # retried once, then a row
    assert rows[0]["status"] == "failed"
    assert rows[0]["error"].startswith("lost on Ray after one retry: ")


@pytest.mark.slow
def test_data_missing_on_the_node_names_the_path_and_the_node(tmp_path, local_ray):
    run = expand_runs(study(tmp_path, "missing"))[0]
    gone = tmp_path / "elsewhere" / "ballad_01.mid"
    run = Run(run.settings, run.seed, run.fold, (str(gone), *run.train_files[1:]), run.test_files, run.split)
    rows: list[dict] = []
    RayBackend().execute([run], False, rows.append)
    assert rows[0]["status"] == "failed"
    assert f"data missing on node {os.uname().nodename} (" in rows[0]["error"]
    assert str(gone) in rows[0]["error"]


def test_a_silent_address_is_one_sentence_and_runs_nothing(tmp_path):
    with pytest.raises(UserError, match=r"^--ray 127\.0\.0\.1:1: no Ray cluster answers there .*nothing was run$"):
        check_address("127.0.0.1:1", timeout=1)
    with pytest.raises(UserError, match="not a Ray address"):
        check_address("head-without-port")
    config = tmp_path / "study.toml"
    config.write_text(STUDY)
    assert main(["experiment", str(config), "--ray", "127.0.0.1:1"]) == 2
    assert not (tmp_path / "study_results").exists()


def test_without_ray_the_backend_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as without the extra
    with pytest.raises(UserError, match=r"pip install 'rvae\[ray\]'"):
        RayBackend().connect()
