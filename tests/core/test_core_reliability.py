"""Faults a careful user meets: resumes that must not mix runs, two writers, dead parents,
corrupt files, bad input. Process faults are injected with real processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from adaptlearn.cli import main
from adaptlearn.core.trials import make_trials, run_trials
from adaptlearn.core.validation import check_range
from adaptlearn.experiments.smoke import SmokeConfig, train_one

TINY = ["run", "smoke", "--preset", "tiny", "--quiet", "--backend", "local"]


def _dirs(out: Path) -> list[Path]:
    parent = out / "smoke"
    return sorted(p for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []


def _broken_partial(out: Path, *extra: str) -> Path:
    """A run killed mid-way: a partial folder with a checkpoint and no results."""
    assert main([*TINY, "--out", str(out), "--set", "fail_at_step=30", *extra]) == 1
    (partial,) = _dirs(out)
    assert partial.name.endswith(".partial")
    return partial


def _one_line_error(capsys, needle: str) -> None:
    err = capsys.readouterr().err
    assert needle in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


# --- resume -----------------------------------------------------------------------------------
def test_resume_dir_refuses_another_config_another_seed_and_finished_runs(tmp_path, capsys):
    partial = _broken_partial(tmp_path)
    capsys.readouterr()
    assert main([*TINY, "--out", str(tmp_path), "--set", "lr=0.2", "--resume", str(partial)]) == 2
    _one_line_error(capsys, "has config")
    assert main([*TINY, "--out", str(tmp_path), "--seed", "7", "--resume", str(partial)]) == 2
    _one_line_error(capsys, "has seed 0, not 7")
    assert main([*TINY, "--out", str(tmp_path), "--resume", str(partial)]) == 0
    (done,) = _dirs(tmp_path)
    capsys.readouterr()
    assert main([*TINY, "--out", str(tmp_path), "--resume", str(done)]) == 2
    _one_line_error(capsys, "is a finished run")


def test_plain_resume_matches_the_seed_and_rejected_runs_create_no_folder(tmp_path, capsys):
    partial = _broken_partial(tmp_path)
    assert main([*TINY, "--out", str(tmp_path), "--device", "tpu", "--resume"]) == 2
    assert main([*TINY, "--out", str(tmp_path), "--seed", str(2**32), "--resume"]) == 2
    assert _dirs(tmp_path) == [partial]  # the refused commands made nothing
    assert main([*TINY, "--out", str(tmp_path), "--seed", "7", "--resume"]) == 0
    assert partial.exists()  # the seed-7 run did not adopt the seed-0 partial
    seeds = {json.loads((d / "config.json").read_text())["seed"] for d in _dirs(tmp_path)}
    assert seeds == {0, 7}


def test_resume_keeps_the_original_environment_and_records_the_resume(tmp_path):
    partial = _broken_partial(tmp_path)
    env_path = partial / "environment.json"
    env = json.loads(env_path.read_text())
    env["git_commit"] = "the-commit-it-started-at"
    env_path.write_text(json.dumps(env))
    assert main([*TINY, "--out", str(tmp_path), "--resume"]) == 0
    (done,) = _dirs(tmp_path)
    env = json.loads((done / "environment.json").read_text())
    assert env["git_commit"] == "the-commit-it-started-at" and len(env["resumes"]) == 1
    results = json.loads((done / "results.json").read_text())
    assert results["environment"]["resumes"] == env["resumes"]
    assert results["trial_flags"]["sgd-seed0"] == {"resumed_from_checkpoint": True}


# --- one writer -------------------------------------------------------------------------------
def test_second_writer_is_refused_naming_the_holder_and_stale_locks_are_taken(tmp_path, capsys):
    partial = _broken_partial(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (partial / ".lock").write_text(str(holder.pid))
        capsys.readouterr()
        assert main([*TINY, "--out", str(tmp_path), "--resume"]) == 2
        _one_line_error(capsys, f"being written by process {holder.pid}")
    finally:
        holder.kill()
        holder.wait()
    assert main([*TINY, "--out", str(tmp_path), "--resume"]) == 0  # the holder is gone
    (done,) = _dirs(tmp_path)
    assert not (done / ".lock").exists()


def test_workers_die_with_their_parent(tmp_path):
    script = textwrap.dedent(
        f"""
        import multiprocessing as mp, os, sys, time
        from concurrent.futures import ProcessPoolExecutor
        from adaptlearn.core.trials import _die_with_parent
        def pid_then_sleep(_):
            open(os.path.join({str(tmp_path)!r}, str(os.getpid())), "w").close()
            time.sleep(120)
        if __name__ == "__main__":
            pool = ProcessPoolExecutor(2, mp_context=mp.get_context("spawn"),
                                       initializer=_die_with_parent)
            for i in range(2):
                pool.submit(pid_then_sleep, i)
            time.sleep(120)
        """
    )
    (tmp_path / "driver.py").write_text(script)
    driver = subprocess.Popen([sys.executable, str(tmp_path / "driver.py")])
    deadline = time.time() + 60
    while len([p for p in tmp_path.iterdir() if p.name.isdigit()]) < 2:
        assert time.time() < deadline, "workers did not start"
        time.sleep(0.2)
    pids = [int(p.name) for p in tmp_path.iterdir() if p.name.isdigit()]
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.time() + 10
    while any(_alive(pid) for pid in pids):
        assert time.time() < deadline, f"workers {pids} outlived their parent"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


# --- corrupt files ----------------------------------------------------------------------------
def _trial_setup(tmp_path):
    cfg = SmokeConfig(steps=40, n_seeds=1, checkpoint_every=10)
    trials = make_trials(["sgd", "momentum"], [0])
    clean = run_trials(train_one, trials, cfg)
    return cfg, trials, clean


def test_truncated_or_foreign_checkpoints_restart_the_trial_and_say_so(tmp_path):
    cfg, trials, clean = _trial_setup(tmp_path)
    ckpt = tmp_path / "ckpt"
    # a good checkpoint of momentum, copied over sgd's (the case that flipped a verdict)
    broken_cfg = SmokeConfig(steps=40, n_seeds=1, checkpoint_every=10, fail_at_step=25)
    with pytest.raises(Exception, match="injected"):
        run_trials(train_one, trials[1:], broken_cfg, checkpoint_dir=ckpt)
    shutil.copy(ckpt / "momentum-seed0.pt", ckpt / "sgd-seed0.pt")
    (ckpt / "momentum-seed0.pt").write_bytes(b"PK\x03\x04 truncated")
    res = run_trials(train_one, trials, cfg, checkpoint_dir=ckpt, resume=True)
    assert [r.final for r in res] == [r.final for r in clean]
    assert "written by trial 'momentum-seed0'" in res[0].extra["checkpoint_rejected"]
    assert "unreadable" in res[1].extra["checkpoint_rejected"]
    assert "momentum-seed0.pt" in res[1].extra["checkpoint_rejected"]


def test_checkpoint_resume_is_marked(tmp_path):
    cfg, trials, clean = _trial_setup(tmp_path)
    ckpt = tmp_path / "ckpt"
    broken_cfg = SmokeConfig(steps=40, n_seeds=1, checkpoint_every=10, fail_at_step=25)
    with pytest.raises(Exception, match="injected"):
        run_trials(train_one, trials[:1], broken_cfg, checkpoint_dir=ckpt)
    res = run_trials(train_one, trials[:1], cfg, checkpoint_dir=ckpt, resume=True)
    assert res[0].extra.get("resumed_from_checkpoint") is True
    assert res[0].final == clean[0].final


@pytest.mark.parametrize("content", ['{"trial": {"meth', "{}", '{"key": "other-seed0"}'])
def test_unusable_trial_cache_is_named_and_the_trial_reruns(tmp_path, caplog, content):
    cfg, trials, clean = _trial_setup(tmp_path)
    cache = tmp_path / "trials"
    run_trials(train_one, trials, cfg, cache_dir=cache)
    (cache / "sgd-seed0.json").write_text(content)
    res = run_trials(train_one, trials, cfg, cache_dir=cache, resume=True)
    assert [r.final for r in res] == [r.final for r in clean]
    assert "sgd-seed0.json" in caplog.text and "runs again" in caplog.text


def test_cache_of_another_config_is_not_reused(tmp_path):
    cfg, trials, _ = _trial_setup(tmp_path)
    cache = tmp_path / "trials"
    run_trials(train_one, trials, cfg, cache_dir=cache)
    other = SmokeConfig(steps=40, n_seeds=1, checkpoint_every=10, lr=0.05)
    res = run_trials(train_one, trials, other, cache_dir=cache, resume=True)
    fresh = run_trials(train_one, trials, other)
    assert [r.final for r in res] == [r.final for r in fresh]


# --- bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, needle",
    [
        (["--set", "lr=inf"], "`lr` of SmokeConfig must be a float in (0, 10]"),
        (["--set", "lr=1e400"], "`lr` of SmokeConfig must be a float"),
        (["--set", "lr=nan"], "`lr` of SmokeConfig must be a float"),
        (["--seed", str(2**32)], "--seed must be an int in [0, 4294967295]"),
        (["--device", "tpu"], "`device` must be one of"),
    ],
)
def test_bad_values_exit_2_with_one_line(tmp_path, capsys, args, needle):
    assert main([*TINY, "--out", str(tmp_path), *args]) == 2
    _one_line_error(capsys, needle)
    assert not (tmp_path / "smoke").exists()


def test_bad_out_folders_exit_2_with_one_line(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main([*TINY, "--out", str(a_file)]) == 2
    _one_line_error(capsys, "is not a folder")
    assert main([*TINY, "--out", "/proc/adaptlearn-cannot-write-here"]) == 2
    _one_line_error(capsys, "cannot create run folder")


def test_unreachable_ray_address_is_refused_quickly(tmp_path, capsys):
    pytest.importorskip("ray")
    t0 = time.perf_counter()
    code = main(
        [*TINY[:-2], "--backend", "ray", "--address", "127.0.0.1:9", "--out", str(tmp_path)]
    )
    assert code == 2 and time.perf_counter() - t0 < 30
    _one_line_error(capsys, "did not answer")


@pytest.mark.parametrize("backend", ["local", "process"])
def test_ctrl_c_prints_how_to_resume_and_exits_130(tmp_path, backend):
    # Each trial runs for minutes: the run must stop at once, not finish (or, with a process
    # pool, start) its trials first. The signal goes to the main process alone, as `kill -INT`.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adaptlearn.cli",
            "run",
            "smoke",
            "--preset",
            "full",
            "--quiet",
            "--backend",
            backend,
            "--workers",
            "2",
            "--set",
            "steps=5000000",
            "--out",
            str(tmp_path),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # a shell without job control starts background jobs (`make test &`, nohup) with SIGINT
        # ignored, and the child would inherit that: Python then installs no KeyboardInterrupt
        # handler. The test is about our handling, so the child starts with the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 60
        while not list((tmp_path / "smoke").glob("*.partial/checkpoints/*.pt")):
            assert time.time() < deadline and proc.poll() is None, "run did not start"
            time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        # generous: on an overloaded 2-core machine the exit can take tens of seconds
        try:
            _, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # show where it is stuck: faulthandler's dump
            proc.send_signal(signal.SIGABRT)
            _, err = proc.communicate(timeout=30)
            pytest.fail(f"the run did not stop within 120 s of SIGINT; its stderr:\n{err}")
    finally:  # never leave the child running into the next test
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130
    assert "interrupted; continue with: adaptlearn run smoke" in err and "--resume" in err


def test_check_range_refuses_infinity_unless_allowed():
    with pytest.raises(ValueError, match=r"`x` must be a float in \[0, inf\); got inf"):
        check_range("x", float("inf"), 0.0)
    assert check_range("x", float("inf"), 0.0, allow_inf=True) == float("inf")
