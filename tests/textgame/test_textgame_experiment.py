"""The ``ae-dqn`` experiment end to end (tiny preset), its presets, verdict and validation."""

import csv
import json

import pytest

from adaptlearn.cli import main
from adaptlearn.core import get_experiment
from adaptlearn.experiments.ae_dqn import METHODS, AEDQNConfig, _verdict


def test_tiny_preset_writes_results_figures_and_verdict(tmp_path):
    assert main(["run", "ae-dqn", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    (run_dir,) = (tmp_path / "ae-dqn").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] and results["supported"] in (True, False, None)
    assert set(results["methods"]) == {f"{m}(quest=egg,size=small)"
                                       for m in ("dqn", "ae-dqn", "masked-dqn")}
    assert results["figures"] and all((run_dir / f).exists() for f in results["figures"])
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == {"dqn", "ae-dqn", "masked-dqn"}
    ae_rows = [r for r in rows if r["method"] == "ae-dqn"]
    assert all(r["admissible_size"] and r["false_elim_visited"] for r in ae_rows)
    report = (run_dir / "report.md").read_text()
    assert "Per-game summary" in report and "Elimination quality" in report


def test_quick_preset_covers_both_quests_both_sizes_all_methods_and_seeds():
    """The issue asks for the short and the long quest at two action-space sizes, several seeds."""
    cfg = get_experiment("ae-dqn").make_config("quick")
    cfg.validate()
    assert set(cfg.quest_list) == {"egg", "troll"} and set(cfg.size_list) == {"small", "large"}
    assert set(cfg.method_list) == set(METHODS) and cfg.n_seeds >= 2
    assert cfg.steps("troll", "large") > cfg.steps("troll", "small") > cfg.steps("egg", "small")


def test_verdict_is_computed_from_the_cells():
    cfg = AEDQNConfig()
    cells = [(q, s) for q in ("egg", "troll") for s in ("small", "large")]
    ratio = dict.fromkeys(cells, 1.0)
    growing = {("egg", "small"): 0.1, ("egg", "large"): 0.5,
               ("troll", "small"): 0.0, ("troll", "large"): 0.2}
    assert _verdict(cfg, dict.fromkeys(cells, True), growing, ratio)[0] is True
    shrinking = {**growing, ("egg", "large"): 0.05}
    assert _verdict(cfg, dict.fromkeys(cells, True), shrinking, ratio)[0] is None
    assert _verdict(cfg, dict.fromkeys(cells, False), growing, ratio)[0] is False
    mixed = {**dict.fromkeys(cells, False), ("egg", "small"): True}
    supported, text = _verdict(cfg, mixed, growing, ratio)
    assert supported is None and "1/4" in text


@pytest.mark.parametrize("kwargs,field", [
    ({"quests": "egg,dragon"}, "quests"), ({"sizes": "huge"}, "sizes"),
    ({"methods": "dqn,sarsa"}, "methods"), ({"methods": ""}, "methods"),
    ({"n_seeds": 0}, "n_seeds"), ({"eps_decay_frac": 0.0}, "eps_decay_frac"),
    ({"large_step_factor": 0.5}, "large_step_factor"), ({"reg": 0.0}, "reg"),
    ({"online_bandit": 1}, "online_bandit"),
])
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AEDQNConfig(**kwargs).validate()
