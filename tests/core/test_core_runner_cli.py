"""End to end: CLI, run folders, reports, resume after a failure, trial backends."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from adaptlearn.cli import main
from adaptlearn.core.io import read_csv
from adaptlearn.core.report import build_report
from adaptlearn.core.trials import TrialFailedError, make_trials, run_trials
from adaptlearn.experiments.smoke import SmokeConfig, train_one


def _run_dirs(out: Path, name: str = "smoke") -> list[Path]:
    return sorted(p for p in (out / name).iterdir() if p.is_dir())


def test_list_shows_every_experiment_with_its_paper(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[0]
    assert any(line.startswith("smoke ") for line in out.splitlines())


def test_run_smoke_writes_complete_run_folder(tmp_path, capsys):
    assert main(["run", "smoke", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    (run,) = _run_dirs(tmp_path)
    assert not run.name.endswith(".partial")
    for name in (
        "config.json",
        "environment.json",
        "results.json",
        "metrics.csv",
        "report.md",
        "figures/loss.png",
    ):
        assert (run / name).is_file(), name
    results = json.loads((run / "results.json").read_text())
    config = json.loads((run / "config.json").read_text())
    env = json.loads((run / "environment.json").read_text())
    assert config["seed"] == 0 and config["config"]["steps"] == 60
    assert "torch" in env["packages"] and "git_commit" in env
    assert set(results["methods"]) == {"sgd", "momentum"}
    assert results["methods"]["sgd"]["test_mse"]["n"] == 2
    assert results["verdict"]["outcome"] == "inconclusive"
    assert results["verdict"]["reason"] == "plumbing-only"  # tiny runs are never evidence
    rows = read_csv(run / "metrics.csv")
    assert {r["method"] for r in rows} == {"sgd", "momentum"} and {r["seed"] for r in rows} == {
        0,
        1,
    }
    # the report's numbers are the results' numbers
    report = (run / "report.md").read_text()
    mean = results["methods"]["momentum"]["test_mse"]["mean"]
    assert f"{mean:.4g}" in report
    assert str(run) in capsys.readouterr().out


def test_same_seed_same_results_different_seed_differs(tmp_path):
    for sub, seed in (("a", "0"), ("b", "0"), ("c", "5")):
        assert (
            main(
                [
                    "run",
                    "smoke",
                    "--preset",
                    "tiny",
                    "--out",
                    str(tmp_path / sub),
                    "--seed",
                    seed,
                    "--quiet",
                ]
            )
            == 0
        )

    def values(sub: str) -> list[float]:
        (run,) = _run_dirs(tmp_path / sub)
        res = json.loads((run / "results.json").read_text())
        return res["methods"]["sgd"]["test_mse"]["values"]

    assert values("a") == values("b")
    assert values("a") != values("c")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--set", "stepz=3"], "unknown config key 'stepz'"),
        (["--set", "steps=many"], "config key 'steps': expected int"),
        (["--set", "lr=-1"], "`lr` of SmokeConfig must be a float in (0, 10]"),
        (["--seed", "-3"], "--seed must be an int in [0, 4294967295]"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, needle):
    code = main(["run", "smoke", "--preset", "tiny", "--out", str(tmp_path), *args])
    err = capsys.readouterr().err
    assert code == 2
    assert needle in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_experiment_exits_2(capsys):
    assert main(["run", "no-such-thing"]) == 2
    assert "unknown experiment 'no-such-thing'" in capsys.readouterr().err


def test_resume_after_failure_gives_the_uninterrupted_result(tmp_path, capsys):
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    base = ["run", "smoke", "--preset", "tiny", "--quiet", "--set", "n_seeds=1"]
    assert main([*base, "--out", str(straight)]) == 0
    capsys.readouterr()
    assert main([*base, "--out", str(broken), "--set", "fail_at_step=30"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "injected failure at step 30" in err[0] and "run.log" in err[0]
    (partial,) = _run_dirs(broken)
    assert "Traceback" in (partial / "run.log").read_text()
    assert partial.name.endswith(".partial")
    assert not (partial / "results.json").exists()
    assert (partial / "checkpoints" / "sgd-seed0.pt").exists()  # saved at step 20
    assert main([*base, "--out", str(broken), "--resume", str(partial)]) == 0
    (done,) = _run_dirs(broken)
    assert not done.name.endswith(".partial")
    a = json.loads((_run_dirs(straight)[0] / "results.json").read_text())["methods"]
    b = json.loads((done / "results.json").read_text())["methods"]
    assert a["sgd"]["test_mse"]["values"] == b["sgd"]["test_mse"]["values"]
    assert a["momentum"]["test_mse"]["values"] == b["momentum"]["test_mse"]["values"]
    curve_a = [r for r in read_csv(_run_dirs(straight)[0] / "metrics.csv") if r["method"] == "sgd"]
    curve_b = [r for r in read_csv(done / "metrics.csv") if r["method"] == "sgd"]
    assert curve_a == curve_b  # nothing lost, nothing duplicated


def test_resume_without_flag_value_finds_newest_partial_with_same_config(tmp_path):
    base = ["run", "smoke", "--preset", "tiny", "--quiet", "--out", str(tmp_path)]
    # a finished run, then an unfinished copy of it (as if killed before the final rename)
    assert main(base) == 0
    (done,) = _run_dirs(tmp_path)
    partial = done.with_name(done.name + ".partial")
    shutil.copytree(done, partial)
    (partial / "results.json").unlink()
    shutil.rmtree(done)
    assert main([*base, "--resume"]) == 0
    (finished,) = _run_dirs(tmp_path)
    assert finished.name == done.name


def test_report_builds_html_with_inline_plots(tmp_path):
    assert main(["run", "smoke", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    assert main(["report", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    assert "data:image/png;base64," in page and "<table>" in page and "Verdict" in page
    md = (tmp_path / "report.md").read_text()
    assert "smoke" in md and "figures/loss.png" in md
    with pytest.raises(FileNotFoundError):
        build_report(tmp_path / "empty")


def test_local_and_process_backends_agree(tmp_path):
    cfg = SmokeConfig(steps=30, n_seeds=2, checkpoint_every=10)
    trials = make_trials(["sgd", "momentum"], [0, 1])
    local = run_trials(train_one, trials, cfg, backend="local")
    pooled = run_trials(train_one, trials, cfg, backend="process", workers=2)
    assert [r.trial for r in local] == trials == [r.trial for r in pooled]
    assert [r.final for r in local] == [r.final for r in pooled]
    assert [r.curve for r in local] == [r.curve for r in pooled]


@pytest.mark.timeout(240)
def test_ray_backend_agrees_with_local(tmp_path):
    if importlib.util.find_spec("ray") is None:
        pytest.skip("ray is not installed (pip install 'adaptlearn[distributed]')")
    cfg = SmokeConfig(steps=30, n_seeds=1, checkpoint_every=10)
    trials = make_trials(["sgd", "momentum"], [0])
    local = run_trials(train_one, trials, cfg, backend="local")
    remote = run_trials(train_one, trials, cfg, backend="ray", workers=2)
    assert [r.final for r in local] == [r.final for r in remote]
    assert [r.curve for r in local] == [r.curve for r in remote]


def test_installed_script_runs():
    exe = Path(sys.executable).with_name("adaptlearn")
    if not exe.exists():
        pytest.skip("adaptlearn script not installed in this environment")
    out = subprocess.run([str(exe), "list"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "smoke" in out.stdout


def test_markdown_sections_render_as_html_tables():
    from adaptlearn.core.report import markdown_to_html

    page = markdown_to_html("| a | b |\n|---|---|\n| 1 | <x> |\n\nSome **bold** and `code`.")
    assert "<table>" in page and "<td>&lt;x&gt;</td>" in page and "|---" not in page
    assert "<strong>bold</strong>" in page and "<code>code</code>" in page


def test_a_failed_trial_in_a_process_pool_starts_no_more_trials(tmp_path):
    # one worker; every trial checkpoints at step 1000 and fails at step 3000 (a fraction of a
    # second later). When the first fails, the pool has handed a few more to its worker's queue
    # (3 here: those can no longer be cancelled); the rest never start. Leaving the pool
    # normally would have run all ten.
    cfg = SmokeConfig(steps=5000, n_seeds=1, checkpoint_every=1000, fail_at_step=3000)
    trials = make_trials(["sgd"], range(10))
    with pytest.raises(TrialFailedError, match="injected failure at step 3000"):
        run_trials(train_one, trials, cfg, backend="process", workers=1,
                   checkpoint_dir=tmp_path / "ckpt")
    started = sorted(p.stem for p in (tmp_path / "ckpt").glob("*.pt"))
    assert started[0] == "sgd-seed0" and len(started) <= 5, started
