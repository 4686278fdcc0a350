"""The hierarchical-marl experiment's tiny preset end to end through the CLI."""

import csv
import json

from adaptlearn.cli import main


def test_tiny_preset_writes_results_figures_and_verdict(tmp_path):
    assert main(["run", "hierarchical-marl", "--preset", "tiny", "--out", str(tmp_path),
                 "--quiet"]) == 0
    (run_dir,) = (tmp_path / "hierarchical-marl").iterdir()
    results = json.loads((run_dir / "results.json").read_text())
    assert results["verdict"] and results["supported"] in (True, False)
    methods = set(results["methods"])
    assert methods == {"iql", "ind-hdqn", "ind-hdqn+acer", "hqmix", "hqmix+acer"}
    for m in methods:
        assert {"team_return", "success", "episode_length", "auc_return"} <= set(
            results["methods"][m])
    for fig in ("team_return", "episode_length", "subgoal_reach", "layout"):
        assert (run_dir / "figures" / f"{fig}.png").stat().st_size > 0
    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == methods and "team_return" in rows[0]
    report = (run_dir / "report.md").read_text()
    assert results["verdict"] in report
    mean = results["methods"]["iql"]["team_return"]["mean"]
    assert f"{mean:.3g}"[:3] in report or "team_return" in report
