"""rvae.experiment: a tiny study writes its rows, resumes without repeating work, gives the
same figures in worker processes as in-process, records failing settings, and refuses bad
configs before running anything."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from rvae.errors import UserError
from rvae.experiment import ExperimentError, load_experiment, run_experiment, runner

REPO = Path(__file__).resolve().parents[1]
SIX_EIGHT = REPO / "data" / "6-8"  # 14 project-generated clips: 7 ballads, 7 bembés

TINY = f"""
data = ["{SIX_EIGHT}"]
seeds = [0, 1]
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


def write_config(tmp_path: Path, text: str, name: str = "study.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def read_csv(path: Path) -> list[dict]:
    with path.open() as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_tiny_experiment_writes_rows_and_resumes(tmp_path, monkeypatch):
    cfg = load_experiment(write_config(tmp_path, TINY))
    assert cfg.output == tmp_path / "study_results"
    first = run_experiment(cfg)
    assert first.ran == 8 and first.skipped == 0  # 2 settings x 2 seeds x 2 folds
    rows = read_csv(cfg.output / "results.csv")
    assert len(rows) == 8
    assert {r["status"] for r in rows} == {"ok"}
    assert len({r["id"] for r in rows}) == 8
    assert sorted((r["steps_per_quarter"], r["seed"], r["fold"]) for r in rows) == sorted(
        (s, seed, fold) for s in ("2", "4") for seed in ("0", "1") for fold in ("0", "1")
    )
    for r in rows:  # files are split, never loops: 14 files, 7 a side
        assert int(r["train_files"]) + int(r["heldout_files"]) == 14
        assert 0 <= float(r["heldout_onset_f1"]) <= 1
    assert json.loads((cfg.output / "results.json").read_text())[0]["id"] == first.rows[0]["id"]
    summary = (cfg.output / "summary.md").read_text()
    assert "| steps_per_quarter | runs | heldout_onset_f1" in summary
    assert "| 2 | 4 |" in summary and "| 4 | 4 |" in summary
    for name in ("sheet", "heldout_onset_f1", "train_onset_f1"):
        assert (cfg.output / "figures" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in (cfg.output / "figures" / f"{name}.svg").read_text()
    # Paired over the same 2 seeds x 2 folds: 4 pairs, too few for Wilcoxon's p
    assert "## paired comparisons" in summary
    assert "| steps_per_quarter = 2 | steps_per_quarter = 4 | 4 |" in summary

    # Run again: everything is done, nothing may train.
    def no_training(*a, **k):
        raise AssertionError("a finished run was repeated")

    monkeypatch.setattr(runner, "run_one", no_training)
    again = run_experiment(load_experiment(cfg.source))
    assert again.ran == 0 and again.skipped == 8
    assert [r["finished_at"] for r in again.rows] == [r["finished_at"] for r in first.rows]
    monkeypatch.undo()

    # An interruption that lost the last three rows: only those three are run again.
    kept = json.loads((cfg.output / "results.json").read_text())[:5]
    (cfg.output / "results.json").write_text(json.dumps(kept))
    ran: list[str] = []
    real = runner.run_one
    monkeypatch.setattr(runner, "run_one", lambda run, *a: ran.append(run.id) or real(run, *a))
    resumed = run_experiment(load_experiment(cfg.source))
    assert resumed.ran == 3 and resumed.skipped == 5
    assert ran == [r["id"] for r in first.rows[5:]]
    assert len(read_csv(cfg.output / "results.csv")) == 8
    assert [r["finished_at"] for r in resumed.rows[:5]] == [r["finished_at"] for r in first.rows[:5]]


@pytest.mark.slow
def test_ctrl_c_during_training_stops_the_study_and_resume_runs_that_run_again(tmp_path, monkeypatch):
    # In process (jobs = 1) Ctrl-C lands inside train(), which keeps the best model so far:
    # right for `rvae train`, wrong for a study, which must not keep a half-trained run as done.
    from rvae.model import GrooveVAE

    cfg = load_experiment(write_config(tmp_path, TINY))
    real_loss, calls = GrooveVAE.loss, []

    def ctrl_c_in_the_second_run(self, *a, **k):
        calls.append(self)
        if len({id(m) for m in calls}) == 2:  # the second run's model
            raise KeyboardInterrupt
        return real_loss(self, *a, **k)

    monkeypatch.setattr(GrooveVAE, "loss", ctrl_c_in_the_second_run)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(cfg)
    monkeypatch.undo()
    kept = json.loads((cfg.output / "results.json").read_text())
    assert [r["status"] for r in kept] == ["ok"]
    resumed = run_experiment(load_experiment(cfg.source))
    assert resumed.ran == 7 and resumed.skipped == 1


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="workers end with the study through Linux's PR_SET_PDEATHSIG")
def test_a_study_killed_by_sigterm_takes_its_workers_with_it(tmp_path):
    """`kill PID` (a terminal closed, a job scheduler's time limit) once left the pool's workers
    training for nobody, each holding a core."""
    long = TINY.replace("jobs = 1", "jobs = 2").replace("epochs = 3", "epochs = 100000")
    study = subprocess.Popen([sys.executable, "-m", "rvae", "experiment", str(write_config(tmp_path, long))])
    try:
        workers = wait_for(lambda: children(study.pid) if len(children(study.pid)) >= 2 else None, 60)
        assert workers, "the study started no workers"
    finally:
        study.send_signal(signal.SIGTERM)
        study.wait(10)
    assert wait_for(lambda: not [p for p in workers if Path(f"/proc/{p}").exists()], 10), "workers outlived the study"


def children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc): the pool's workers and its resource tracker."""
    kids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # a process that ended while we looked
            continue
        if int(fields[1]) == pid:
            kids.append(int(stat.parent.name))
    return kids


def wait_for(cond, timeout: float):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if value := cond():
            return value
        time.sleep(0.1)
    return cond()


@pytest.mark.slow
def test_same_seed_same_figures_in_workers_and_in_process(tmp_path):
    text = TINY.replace("seeds = [0, 1]", "seeds = [3]").replace("steps_per_quarter = [2, 4]", "bars = [1]")
    pooled = load_experiment(write_config(tmp_path, text, "a.toml"), jobs=2)  # spawned workers
    inproc = load_experiment(write_config(tmp_path, text, "b.toml"), jobs=1)
    a, b = run_experiment(pooled), run_experiment(inproc)
    assert a.ran == b.ran == 2
    figures = [k for k in a.rows[0] if k.startswith(("heldout_", "train_"))]
    assert "heldout_onset_f1" in figures
    assert [[r[k] for k in figures] for r in a.rows] == [[r[k] for k in figures] for r in b.rows]


@pytest.mark.slow
def test_a_failing_setting_is_recorded_and_the_others_finish(tmp_path):
    text = TINY.replace("seeds = [0, 1]", "seeds = [0]").replace(
        "steps_per_quarter = [2, 4]", "min_onsets = [1, 10000]"
    )
    result = run_experiment(load_experiment(write_config(tmp_path, text)))
    rows = read_csv(result.output / "results.csv")
    assert [(r["min_onsets"], r["status"]) for r in rows] == [("1", "ok")] * 2 + [("10000", "failed")] * 2
    assert all("no training loops" in r["error"] for r in rows if r["status"] == "failed")
    assert "## failed runs" in (result.output / "summary.md").read_text()
    # Failed runs are finished runs: a second call does not repeat them.
    assert run_experiment(load_experiment(result.output.parent / "study.toml")).ran == 0


@pytest.mark.slow
def test_generation_figures_are_recorded_as_missing_without_judge(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "_judge_available", lambda: "missing (rvae.judge does not import: test)")
    text = TINY.replace("generation = false", "generation = true").replace("seeds = [0, 1]", "seeds = [0]")
    text = text.replace("steps_per_quarter = [2, 4]", "steps_per_quarter = [2]")
    result = run_experiment(load_experiment(write_config(tmp_path, text)))
    assert {r["generation"] for r in result.rows} == {"missing (rvae.judge does not import: test)"}
    assert "Generation figures: missing" in (result.output / "summary.md").read_text()


@pytest.mark.parametrize(
    "change, named",
    [
        (("jobs = 1", "jobs = 1\nepochs = 3"), "epochs: unknown key"),
        (("hidden = 16", "hiden = 16"), "fixed.hiden: unknown setting"),
        (("epochs = 3", 'epochs = "3"'), "fixed.epochs: '3' is not an integer"),
        (("epochs = 3", "epochs = true"), "fixed.epochs: True is not an integer"),
        (("steps_per_quarter = [2, 4]", "steps_per_quarter = [2, 4.5]"), "grid.steps_per_quarter: 4.5 is not"),
        (("steps_per_quarter = [2, 4]", "steps_per_quarter = 4"), "grid.steps_per_quarter: a grid setting is a list"),
        (("steps_per_quarter = [2, 4]", "steps_per_quarter = []"), "grid.steps_per_quarter: empty list"),
        (("steps_per_quarter = [2, 4]", ""), "grid: empty"),
        (("steps_per_quarter = [2, 4]", "steps_per_quarter = [0, 4]"), "grid.steps_per_quarter: 0 must be at least 1"),
        (("steps_per_quarter = [2, 4]", 'time_signature = ["6/8", "6/7"]'), "grid.time_signature: '6/7' must be N/D"),
        (("steps_per_quarter = [2, 4]", 'kit = ["nokit.toml"]'), "nokit.toml' is neither a built-in kit"),
        (("epochs = 3", "epochs = 0"), "fixed.epochs: 0 must be at least 1"),
        (("epochs = 3", "batch_size = 0"), "fixed.batch_size: 0 must be at least 1"),
        (("steps_per_quarter = [2, 4]", "kl_warmup = [0.5, 1.5]"), "grid.kl_warmup: 1.5 must be between 0 and 1"),
        (("steps_per_quarter = [2, 4]", "beta = [0.2, nan]"), "grid.beta: nan must not be negative"),
        (("seeds = [0, 1]", "seeds = [0, -1]"), "seeds: -1 is not an integer of at least 0"),
        (("jobs = 1", "jobs = 0"), "jobs: 0 must be at least 1"),
        (("hidden = 16", "seed = 1"), "fixed.seed: give seeds"),
        (("seeds = [0, 1]", "seeds = []"), "seeds: a non-empty list"),
        (("folds = 2", "folds = 1"), "folds: 1 is not an integer of at least 2"),
        (("folds = 2", "folds = 2\nholdout = 0.2"), "folds, holdout: give one"),
        ((f'data = ["{SIX_EIGHT}"]', 'data = ["no/such/folder"]'), "data: no/such/folder"),
        ((f'data = ["{SIX_EIGHT}"]', ""), "study.toml: no data: give the MIDI files and folders"),
        (("[grid]\nsteps_per_quarter = [2, 4]", ""), "study.toml: no [grid] table: name at least one setting"),
    ],
)
def test_bad_configs_name_the_key_and_run_nothing(tmp_path, change, named):
    old, new = change
    assert old in TINY
    path = write_config(tmp_path, TINY.replace(old, new))
    with pytest.raises(ExperimentError) as err:
        load_experiment(path)
    assert named in str(err.value)
    assert not (tmp_path / "study_results").exists()


def test_a_missing_config_file_is_an_experiment_error(tmp_path):
    with pytest.raises(ExperimentError, match="does not exist"):
        load_experiment(tmp_path / "nothing.toml")


@pytest.mark.slow
def test_generation_figures_come_from_judge_when_it_imports(tmp_path, monkeypatch):
    # A stand-in rvae.judge: the runner must not depend on the real one being ready.
    fake = types.ModuleType("rvae.judge")
    fake.judge = lambda ckpt, loops, seed=0: {
        "seed": seed,
        "prior": {"summary": {"oa_mean": 0.5 + seed, "kl_mean": 0.1}, "descriptors": {"density": {"oa": 0.4}}},
        "novelty": {"map": 0.25},
    }
    monkeypatch.setitem(sys.modules, "rvae.judge", fake)
    text = TINY.replace("generation = false", "generation = true").replace("seeds = [0, 1]", "seeds = [1]")
    text = text.replace("steps_per_quarter = [2, 4]", "steps_per_quarter = [2]")
    result = run_experiment(load_experiment(write_config(tmp_path, text)))
    row = read_csv(result.output / "results.csv")[0]
    assert row["generation"] == "ok"
    assert float(row["gen_prior_summary_oa_mean"]) == 1.5 and float(row["gen_novelty_map"]) == 0.25
    assert "gen_prior_descriptors_density_oa" not in row  # details stay in the per-run report
    report = json.loads((result.output / "generation" / f"{row['id']}.json").read_text())
    assert report["prior"]["descriptors"]["density"]["oa"] == 0.4
    assert "## generation: steps_per_quarter" in (result.output / "summary.md").read_text()


def test_without_the_research_extra_nothing_runs_and_one_sentence_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails, as without rvae[research]
    monkeypatch.setattr(runner, "run_one", lambda *a: pytest.fail("a run started without the extra"))
    cfg = load_experiment(write_config(tmp_path, TINY))
    with pytest.raises(UserError, match=r"pip install 'rvae\[research\]' \(or figures = false"):
        run_experiment(cfg)
    assert not (cfg.output / "results.json").exists()


@pytest.mark.slow
def test_figures_false_needs_neither_matplotlib_nor_scipy(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "scipy", None)
    text = TINY.replace("generation = false", "generation = false\nfigures = false").replace(
        "seeds = [0, 1]", "seeds = [0]"
    )
    result = run_experiment(load_experiment(write_config(tmp_path, text)))
    assert result.ran == 4
    assert not (result.output / "figures").exists()
    assert "paired" not in (result.output / "summary.md").read_text()
