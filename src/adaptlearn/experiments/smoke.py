"""``smoke``: a seconds-long experiment that exercises the whole path end to end.

Noisy linear regression trained with plain SGD and with SGD + momentum. It uses every piece of
the runner: trials over methods x seeds, per-trial checkpoints and resume, curves, a figure, a
a results table and a verdict judged by the protocol of :mod:`adaptlearn.core.verdict`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from adaptlearn.core import (
    RunContext,
    Trial,
    TrialContext,
    capture_rng_state,
    check_int,
    check_range,
    new_figure,
    plot_curves,
    register,
    restore_rng_state,
)
from adaptlearn.core.verdict import Claim, Comparison, Verdict, judge


@dataclass
class SmokeConfig:
    """Config of the smoke experiment."""

    steps: int = 300
    """SGD steps per trial."""
    n_features: int = 20
    """Input dimension of the regression problem."""
    batch_size: int = 32
    """Examples per step."""
    lr: float = 0.02
    """Learning rate of both methods."""
    n_seeds: int = 3
    """Seeds per method."""
    checkpoint_every: int = 50
    """Steps between checkpoints."""
    fail_at_step: int = field(default=-1, metadata={"affects_results": False})
    """Fault injection for tests: raise at this step (-1: never)."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        check_int("steps", self.steps, 1, owner="SmokeConfig")
        check_int("n_features", self.n_features, 1, owner="SmokeConfig")
        check_int("batch_size", self.batch_size, 1, owner="SmokeConfig")
        check_range("lr", self.lr, 0.0, 10.0, low_inclusive=False, owner="SmokeConfig")
        check_int("n_seeds", self.n_seeds, 1, owner="SmokeConfig")
        check_int("checkpoint_every", self.checkpoint_every, 1, owner="SmokeConfig")


class InjectedFailure(RuntimeError):
    """Raised at ``fail_at_step`` to simulate a killed run."""


def train_one(trial: Trial, cfg: SmokeConfig, tctx: TrialContext) -> dict:
    """Train one linear model; checkpoint every ``checkpoint_every`` steps."""
    gen = torch.Generator().manual_seed(trial.seed)
    true_w = torch.randn(cfg.n_features, 1, generator=gen)
    model = torch.nn.Linear(cfg.n_features, 1)
    momentum = 0.9 if trial.method == "momentum" else 0.0
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=momentum)
    curve: list[dict] = []
    start = 0
    state = tctx.load_checkpoint()
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        gen.set_state(state["generator"])
        restore_rng_state(state["rng"])
        curve = list(state["curve"])
        start = int(state["step"])
    for step in tctx.progress(range(start, cfg.steps), initial=start, total=cfg.steps):
        if step % cfg.checkpoint_every == 0 and step > start:
            tctx.save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "generator": gen.get_state(),
                    "rng": capture_rng_state(),
                    "curve": curve,
                    "step": step,
                }
            )
        if step == cfg.fail_at_step:
            raise InjectedFailure(f"injected failure at step {step}")
        x = torch.randn(cfg.batch_size, cfg.n_features, generator=gen)
        y = x @ true_w + 0.1 * torch.randn(cfg.batch_size, 1, generator=gen)
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0 or step == cfg.steps - 1:
            curve.append({"step": step, "loss": loss.item()})
    with torch.no_grad():
        x = torch.randn(1000, cfg.n_features, generator=gen)
        test_loss = float(torch.nn.functional.mse_loss(model(x), x @ true_w))
    early = [row["loss"] for row in curve if row["step"] < 100]
    return {
        "final": {"early_loss": sum(early) / len(early), "test_mse": test_loss},
        "curve": curve,
    }


@register(
    "smoke",
    family="core",
    paper="(none: end-to-end check of the runner)",
    claim="On noisy linear regression, SGD with momentum lowers the training loss faster than "
    "plain SGD at the same learning rate (lower mean loss over the first 100 steps).",
    config=SmokeConfig,
    presets={"tiny": {"steps": 60, "n_seeds": 2, "checkpoint_every": 20}, "full": {"steps": 2000}},
)
def run(cfg: SmokeConfig, ctx: RunContext) -> None:
    """Run SGD and momentum over the seeds; plot loss curves; compare test MSE."""
    results = ctx.run_trials(train_one, ctx.make_trials(["sgd", "momentum"]))
    ctx.add_trial_results(results, higher_is_better={"test_mse": False, "early_loss": False})
    fig, ax = new_figure()
    plot_curves(ax, ctx.metrics, "step", "loss", logy=True, title="training loss")
    ctx.save_figure(fig, "loss")
    ctx.set_verdict(verdict(ctx.rows, preset=ctx.preset))


#: The claim, declared before any run: momentum's mean early loss is lower than SGD's, paired by
#: seed, by a practical margin of 5% (ratio scale).
CLAIM = Claim(
    statement="momentum lowers the mean training loss of the first 100 steps by >= 5% vs SGD",
    comparisons=(
        Comparison(
            metric="early_loss",
            method="momentum",
            baseline="sgd",
            higher_is_better=False,
            scale="ratio",
            margin=1.05,
        ),
    ),
    min_pairs=3,
)


def verdict(rows: Sequence[Mapping[str, Any]], *, preset: str = "quick") -> Verdict:
    """The smoke verdict: a pure function of the per-trial rows (method, seed, early_loss)."""
    return judge(CLAIM, rows, preset=preset)
