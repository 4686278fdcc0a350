"""The ``ae-dqn`` experiment end to end (tiny preset) and its config validation."""

import csv
import json

import pytest

from adaptlearn.cli import main
from adaptlearn.experiments.ae_dqn import AEDQNConfig


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
    assert any(r.get("admissible_size") for r in rows if r["method"] == "ae-dqn")
    assert "Per-game summary" in (run_dir / "report.md").read_text()


@pytest.mark.parametrize("kwargs,field", [
    ({"quests": "egg,dragon"}, "quests"), ({"sizes": "huge"}, "sizes"),
    ({"n_seeds": 0}, "n_seeds"), ({"eps_decay_frac": 0.0}, "eps_decay_frac"),
])
def test_config_validation_names_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AEDQNConfig(**kwargs).validate()
