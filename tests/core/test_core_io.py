"""Atomic writes, checkpoints (weights_only) and RNG state capture."""

from __future__ import annotations

import fractions
import random

import numpy as np
import pytest
import torch

from adaptlearn.core.io import (
    atomic_write_csv,
    atomic_write_json,
    atomic_write_text,
    capture_rng_state,
    load_checkpoint,
    read_csv,
    restore_rng_state,
    save_checkpoint,
)
from adaptlearn.core.seeding import seed_everything, spawn_seeds


def test_atomic_write_leaves_only_the_target(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "f.txt", "hello")
    assert path.read_text() == "hello"
    atomic_write_json(tmp_path / "a" / "g.json", {"x": np.float32(1.5), "t": torch.tensor([1, 2])})
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["f.txt", "g.json"]


def test_atomic_write_failure_keeps_old_file(tmp_path):
    target = tmp_path / "r.json"
    atomic_write_json(target, {"ok": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {"bad": object()})
    assert target.read_text().strip().startswith("{")
    assert "ok" in target.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]


def test_csv_union_of_columns(tmp_path):
    atomic_write_csv(tmp_path / "m.csv", [{"a": 1, "b": 2.5}, {"a": 2, "c": "x"}])
    rows = read_csv(tmp_path / "m.csv")
    assert rows == [{"a": 1, "b": 2.5, "c": None}, {"a": 2, "b": None, "c": "x"}]


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = {
        "model": model.state_dict(),
        "optimizer": opt.state_dict(),
        "step": 7,
        "curve": [{"step": 1, "loss": 0.5}],
        "rng": capture_rng_state(),
    }
    save_checkpoint(tmp_path / "c.pt", state)
    loaded = load_checkpoint(tmp_path / "c.pt")
    assert loaded["step"] == 7
    assert torch.equal(loaded["model"]["weight"], model.state_dict()["weight"])
    assert loaded["curve"] == [{"step": 1, "loss": 0.5}]


def test_checkpoint_refuses_arbitrary_objects(tmp_path):
    # any class outside torch's allow-list stands in for a malicious pickle payload
    torch.save({"x": fractions.Fraction(1, 3)}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match=r"Weights only load failed|Unsupported"):
        load_checkpoint(tmp_path / "evil.pt")


def test_rng_state_restore_replays_all_generators():
    seed_everything(3)
    state = capture_rng_state()
    first = (random.random(), np.random.rand(), torch.rand(1).item())  # noqa: NPY002
    restore_rng_state(state)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first  # noqa: NPY002


def test_seed_everything_and_spawn():
    a, b = seed_everything(1), seed_everything(1)
    assert a.numpy.random() == b.numpy.random()
    assert torch.rand(1, generator=a.torch).item() == torch.rand(1, generator=b.torch).item()
    seeds = spawn_seeds(0, 4)
    assert len(set(seeds)) == 4 and seeds == spawn_seeds(0, 4)
    with pytest.raises(ValueError, match="seed"):
        seed_everything(-1)


def test_atomic_write_gives_files_the_usual_mode(tmp_path):
    import os
    import stat

    path = atomic_write_text(tmp_path / "report.html", "<html></html>")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
