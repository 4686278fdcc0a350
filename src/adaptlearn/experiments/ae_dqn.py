"""``ae-dqn``: AE-DQN vs DQN vs masked DQN on a text game's short and long quest.

Zahavy et al. (2018) claim that eliminating actions with a contextual bandit on the Action
Elimination Network's features gives a considerable speed-up over vanilla DQN in large, redundant
action spaces, growing with the size of the action space. We train the three agents on the
:class:`~adaptlearn.textgame.TextQuestEnv` egg (short) and troll (long) quests at one or two
action-space sizes (``small`` = 6 verbs x 34 nouns + 8 = 212 commands, close to the paper's
209-action egg quest; ``large`` = 20 verbs x 60 nouns + 8 = 1,208 commands, the paper's ~1.2k
Open-Zork set) and compare evaluation return curves, steps to solve and the area under the curve.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from adaptlearn.core import (
    RunContext,
    Trial,
    TrialContext,
    check_choice,
    check_int,
    check_probability,
    check_range,
    new_figure,
    plot_curves,
    register,
)
from adaptlearn.textgame import TextQuestEnv
from adaptlearn.textgame.agent import AEDQNAgent, AgentConfig, train_agent

SIZES = {"small": (6, 34), "large": (20, 60)}
METHODS = ("dqn", "ae-dqn", "masked-dqn")


@dataclass
class AEDQNConfig:
    """Config of the ``ae-dqn`` experiment (defaults = the ``quick`` preset)."""

    quests: str = "egg,troll"
    """Comma-separated quests: ``egg`` (short, 6 steps) and/or ``troll`` (long, 11-13 steps)."""
    sizes: str = "small"
    """Comma-separated action-space sizes: ``small`` (212 commands) and/or ``large`` (1,208)."""
    egg_steps: int = 4000
    """Environment steps per egg-quest run."""
    troll_steps: int = 5000
    """Environment steps per troll-quest run."""
    n_seeds: int = 2
    """Seeds per (method, quest, size)."""
    game_seed: int = 0
    """World generator seed (the same world for every run)."""
    max_steps: int = 50
    """Episode step limit [paper: 100]."""
    eval_every: int = 500
    """Steps between evaluations."""
    eval_episodes: int = 2
    """Episodes per evaluation (epsilon = ``eval_epsilon``)."""
    eval_epsilon: float = 0.05
    """Exploration during evaluation [0.05]."""
    solve_success: float = 0.5
    """An evaluation with at least this success rate counts as solved."""
    eps_decay_frac: float = 0.8
    """Epsilon decays linearly over this fraction of each run's steps."""
    beta: float = 0.1
    """Bandit confidence constant (unit-norm features + bias)."""
    threshold: float = 0.6
    """Elimination threshold ``l``."""
    refresh_every: int = 1000
    """Bandit/AEN refresh period ``L`` in steps."""
    train_every: int = 4
    """Environment steps per gradient update."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        o = "AEDQNConfig"
        for q in self.quest_list:
            check_choice("quests", q, ("egg", "troll"), owner=o)
        for s in self.size_list:
            check_choice("sizes", s, tuple(SIZES), owner=o)
        if not self.quest_list or not self.size_list:
            raise ValueError("`quests` and `sizes` of AEDQNConfig must not be empty")
        for name in ("egg_steps", "troll_steps", "n_seeds", "max_steps", "eval_every",
                     "eval_episodes", "refresh_every", "train_every"):
            check_int(name, getattr(self, name), 1, owner=o)
        check_int("game_seed", self.game_seed, 0, owner=o)
        check_probability("eval_epsilon", self.eval_epsilon, owner=o)
        check_probability("solve_success", self.solve_success, owner=o)
        check_range("eps_decay_frac", self.eps_decay_frac, 0.0, 1.0, low_inclusive=False, owner=o)
        check_range("beta", self.beta, 0.0, owner=o)
        check_range("threshold", self.threshold, owner=o)

    @property
    def quest_list(self) -> list[str]:
        """Quests as a list."""
        return [q.strip() for q in self.quests.split(",") if q.strip()]

    @property
    def size_list(self) -> list[str]:
        """Sizes as a list."""
        return [s.strip() for s in self.sizes.split(",") if s.strip()]


def make_env(cfg: AEDQNConfig, quest: str, size: str) -> TextQuestEnv:
    """The game of one cell of the grid."""
    n_verbs, n_nouns = SIZES[size]
    return TextQuestEnv(quest, n_verbs=n_verbs, n_nouns=n_nouns, game_seed=cfg.game_seed,
                        max_steps=cfg.max_steps)


def train_one(trial: Trial, cfg: AEDQNConfig, tctx: TrialContext) -> dict[str, Any]:
    """Train one agent on one game; return eval curves and summary metrics."""
    import torch

    torch.set_num_threads(tctx.threads)
    quest, size = trial.param("quest"), trial.param("size")
    env, eval_env = make_env(cfg, quest, size), make_env(cfg, quest, size)
    steps = cfg.egg_steps if quest == "egg" else cfg.troll_steps
    agent_cfg = AgentConfig(
        mode=trial.method, beta=cfg.beta, threshold=cfg.threshold,
        refresh_every=cfg.refresh_every, train_every=cfg.train_every,
        learn_start=min(200, steps // 10), eps_decay_steps=max(1, int(cfg.eps_decay_frac * steps)),
    )
    agent = AEDQNAgent(len(env.vocab), env.obs_len, env.n_actions, agent_cfg, seed=trial.seed)
    curve, summary = train_agent(
        env, agent, total_steps=steps, eval_env=eval_env, eval_every=cfg.eval_every,
        eval_episodes=cfg.eval_episodes, eval_epsilon=cfg.eval_epsilon,
        solve_success=cfg.solve_success, seed=trial.seed,
        progress=lambda it: tctx.progress(it, total=steps),
    )
    final = {"steps_to_solve": summary["steps_to_solve"], "solved": summary["solved"],
             "auc_return": float(np.mean([r["eval_return"] for r in curve])),
             "final_return": summary["final_return"]}
    extra: dict[str, Any] = {"n_actions": env.n_actions, "gold_path_length": len(env.gold_path),
                             "observations": len(agent.table), **summary}
    if agent.uses_elimination:
        extra["final_admissible_size"] = float(curve[-1]["admissible_size"])
        extra["gold_eliminated"] = float(curve[-1]["gold_eliminated"])
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
             for r in curve]
    return {"final": final, "curve": clean, "extra": extra}


def _cell(results: list[Any], method: str, quest: str, size: str) -> list[dict[str, float]]:
    return [{**r.extra, **r.final} for r in results if r.trial.method == method
            and r.trial.param("quest") == quest and r.trial.param("size") == size]


@register(
    "ae-dqn",
    family="textgame",
    paper="Zahavy, Haroush, Merlis, Mankowitz, Mannor. Learn What Not to Learn: Action "
    "Elimination with Deep Reinforcement Learning. NeurIPS 2018 (arXiv:1809.02121)",
    claim="Eliminating actions with a linear contextual bandit on the AEN's features makes DQN "
    "learn considerably faster in large, redundant text-game action spaces, and the speed-up "
    "grows with the size of the action space.",
    config=AEDQNConfig,
    presets={
        "tiny": {"quests": "egg", "sizes": "small", "egg_steps": 200, "n_seeds": 1,
                 "eval_every": 100, "eval_episodes": 1, "refresh_every": 100, "max_steps": 30},
        "full": {"sizes": "small,large", "egg_steps": 15000, "troll_steps": 30000, "n_seeds": 5,
                 "eval_every": 1000, "eval_episodes": 5, "max_steps": 100, "train_every": 2},
    },
    baseline="dqn",
)
def run(cfg: AEDQNConfig, ctx: RunContext) -> None:
    """Train DQN, AE-DQN and masked DQN on every (quest, size); plot and compare."""
    trials = ctx.make_trials(list(METHODS), quest=cfg.quest_list, size=cfg.size_list)
    results = ctx.run_trials(train_one, trials)
    directions = {"steps_to_solve": False, "solved": True, "final_return": True,
                  "auc_return": True}
    ctx.add_trial_results(results, higher_is_better=directions, label="method+params")
    ctx.set_baseline(f"dqn(quest={cfg.quest_list[0]},size={cfg.size_list[0]})")

    lines = ["| quest | size | \\|A\\| | method | solved (eval) | steps to solve (median) |"
             " AUC eval return | final eval return | reached goal in training |"
             " first training success (median) | final \\|A'\\| | gold cmds eliminated |",
             "|" + "---|" * 12]
    speedups: dict[tuple[str, str], float] = {}
    better_cells, earlier_cells, cells = 0, 0, 0
    for quest in cfg.quest_list:
        for size in cfg.size_list:
            rows = [m for m in ctx.metrics if m.get("quest") == quest and m.get("size") == size]
            fig, axes_grid = new_figure(ncols=3)
            axes = axes_grid[0]
            plot_curves(axes[0], rows, "step", "eval_return",
                        title=f"{quest} quest, {size} ({SIZES[size][0]}x{SIZES[size][1]}+8)")
            axes[0].legend()
            plot_curves(axes[1], [r for r in rows if r["method"] == "ae-dqn"], "step",
                        "admissible_size", logy=True, title="AE-DQN mean |A'| on gold path")
            plot_curves(axes[2], rows, "step", "train_return",
                        title="training return (last 10 episodes)")
            ctx.save_figure(fig, f"return_{quest}_{size}")
            stats = {}
            for method in METHODS:
                finals = _cell(results, method, quest, size)
                if not finals:
                    continue
                solved = sum(f["solved"] for f in finals)
                med = float(np.median([f["steps_to_solve"] for f in finals]))
                auc = float(np.mean([f["auc_return"] for f in finals]))
                budget = cfg.egg_steps if quest == "egg" else cfg.troll_steps
                reached = sum(f["first_success_step"] < budget for f in finals)
                first = float(np.median([f["first_success_step"] for f in finals]))
                ae = method == "ae-dqn"
                adm = f"{np.mean([f['final_admissible_size'] for f in finals]):.1f}" if ae else "-"
                gold = f"{np.mean([f['gold_eliminated'] for f in finals]):.1f}" if ae else "-"
                stats[method] = (solved, med, auc, reached, first)
                lines.append(f"| {quest} | {size} | {int(finals[0]['n_actions'])} | {method} | "
                             f"{solved:.0f}/{len(finals)} | {med:.0f} | {auc:.3f} | "
                             f"{np.mean([f['final_return'] for f in finals]):.3f} | "
                             f"{reached}/{len(finals)} | {first:.0f} | {adm} | {gold} |")
            if "dqn" in stats and "ae-dqn" in stats:
                cells += 1
                dqn_s, ae_s = stats["dqn"], stats["ae-dqn"]
                # steps to solve are censored at the budget: the ratio is a lower bound then.
                speedups[(quest, size)] = dqn_s[1] / ae_s[1]
                if ae_s[2] > dqn_s[2] + 1e-9 and ae_s[0] >= dqn_s[0]:
                    better_cells += 1
                if ae_s[3] > dqn_s[3] or (ae_s[3] == dqn_s[3] > 0 and ae_s[4] < dqn_s[4]):
                    earlier_cells += 1
    ctx.add_section("Per-game summary", "\n".join(lines) + "\n\nSteps to solve and first "
                    "training success are censored at the run's budget when never reached (so "
                    "speed-ups are lower bounds). 'gold cmds eliminated': gold-path commands "
                    "outside A' at the end (lock-in).")
    ctx.note("speedup_steps_to_solve", {f"{q}/{s}": v for (q, s), v in speedups.items()})

    trend = ""
    grows: bool | None = None
    if "small" in cfg.size_list and "large" in cfg.size_list:
        grows = all(speedups.get((q, "large"), 0) >= speedups.get((q, "small"), math.inf)
                    for q in cfg.quest_list)
        trend = (" Speed-up (DQN/AE-DQN median steps to solve) small -> large: "
                 + "; ".join(f"{q}: {speedups.get((q, 'small'), math.nan):.2f} -> "
                             f"{speedups.get((q, 'large'), math.nan):.2f}" for q in cfg.quest_list)
                 + (" (grows)." if grows else " (does not grow everywhere)."))
    else:
        trend = " The growth with |A| is only tested with sizes='small,large' (full preset)."
    desc = "; ".join(f"{q}/{s}: x{v:.2f}" for (q, s), v in speedups.items())
    supported: bool | None = better_cells == cells and cells > 0 and (grows is not False)
    if not supported and earlier_cells == cells and cells > 0:
        supported = None  # AE-DQN finds the goal earlier in training, but not yet at evaluation
    ctx.set_verdict(
        f"AE-DQN beat DQN at evaluation (higher mean AUC of eval return and at least as many "
        f"solved seeds) in {better_cells}/{cells} (quest, size) cells, and reached the goal in "
        f"training in more seeds or earlier in {earlier_cells}/{cells}; steps-to-solve "
        f"speed-up {desc}.{trend}", supported=supported)


__all__ = ["AEDQNConfig", "make_env", "run", "train_one"]
