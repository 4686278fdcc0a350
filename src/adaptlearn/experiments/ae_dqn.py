"""``ae-dqn``: AE-DQN vs DQN vs masked DQN on a text game's short and long quest, two sizes.

Zahavy et al. (2018) claim that eliminating actions with a contextual bandit on the Action
Elimination Network's features gives a considerable speed-up over vanilla DQN in large, redundant
action spaces, growing with the size of the action space. We train the three agents on the
:class:`~adaptlearn.textgame.TextQuestEnv` egg (short) and troll (long) quests at two action-space
sizes (``small`` = 6 verbs x 34 nouns + 8 = 212 commands, close to the paper's 209-action egg
quest; ``large`` = 20 verbs x 60 nouns + 8 = 1,208 commands, the paper's ~1.2k Open-Zork set) and
compare evaluation return and success curves, steps to solve and the area under the return curve.
For AE-DQN we also measure how good the elimination is: the share of truly valid (observation,
command) pairs it eliminates (false elimination) and the share of invalid pairs it eliminates.

References:
    Zahavy, Haroush, Merlis, Mankowitz, Mannor, "Learn What Not to Learn: Action Elimination with
    Deep Reinforcement Learning", NeurIPS 2018 (arXiv:1809.02121).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
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
from adaptlearn.core.verdict import Claim, Comparison, Precondition, Verdict, judge
from adaptlearn.textgame import TextQuestEnv
from adaptlearn.textgame.agent import MODES, AEDQNAgent, AgentConfig, train_agent

SIZES = {"small": (6, 34), "large": (20, 60)}
METHODS = MODES  # ("dqn", "ae-dqn", "masked-dqn")
TUNING_GAME_SEED = 1
"""World on which ``beta`` was chosen (README, "Choosing beta"); results are reported on 0."""


def _split(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


@dataclass
class AEDQNConfig:
    """Config of the ``ae-dqn`` experiment (defaults = the ``quick`` preset)."""

    methods: str = "dqn,ae-dqn,masked-dqn"
    """Comma-separated agents: ``dqn``, ``ae-dqn``, ``masked-dqn`` (true mask: upper bound)."""
    quests: str = "egg"
    """Comma-separated quests: ``egg`` (short, 4-6 steps) and/or ``troll`` (long, 11-13 steps).
    The quick preset runs only egg: at quick budgets even the true-mask oracle fails the troll
    quest, so its cells could only come out ``control-failed`` (``--full`` runs both)."""
    sizes: str = "small,large"
    """Comma-separated action-space sizes: ``small`` (212 commands) and/or ``large`` (1,208)."""
    egg_steps: int = 3000
    """Environment steps per egg-quest run at the small size."""
    troll_steps: int = 6000
    """Environment steps per troll-quest run at the small size."""
    large_step_factor: float = 1.5
    """Runs at the large size get this many times more steps."""
    n_seeds: int = 3
    """Seeds per (method, quest, size); the verdict pairs by seed and needs >= 3."""
    game_seed: int = 0
    """World generator seed (the same world for every run; ``beta`` was chosen on world 1)."""
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
    beta: float = 0.3
    """Bandit confidence constant (unit-norm features + bias); chosen on world 1."""
    threshold: float = 0.6
    """Elimination threshold ``l`` [0.6]."""
    reg: float = 0.1
    """Ridge regulariser ``lambda`` [0.1]."""
    refresh_every: int = 500
    """Bandit/AEN refresh period ``L`` in steps."""
    online_bandit: bool = False
    """Also update the bandit after every step (the paper: only at refreshes)."""
    train_every: int = 8
    """Environment steps per gradient update (batch 32)."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        o = "AEDQNConfig"
        for m in self.method_list:
            check_choice("methods", m, METHODS, owner=o)
        for q in self.quest_list:
            check_choice("quests", q, ("egg", "troll"), owner=o)
        for s in self.size_list:
            check_choice("sizes", s, tuple(SIZES), owner=o)
        for name in ("methods", "quests", "sizes"):
            if not _split(getattr(self, name)):
                raise ValueError(f"`{name}` of AEDQNConfig must name at least one entry; got "
                                 f"{getattr(self, name)!r}")
        for name in ("egg_steps", "troll_steps", "n_seeds", "max_steps", "eval_every",
                     "eval_episodes", "refresh_every", "train_every"):
            check_int(name, getattr(self, name), 1, owner=o)
        check_range("large_step_factor", self.large_step_factor, 1.0, 100.0, owner=o)
        check_int("game_seed", self.game_seed, 0, owner=o)
        check_probability("eval_epsilon", self.eval_epsilon, owner=o)
        check_probability("solve_success", self.solve_success, owner=o)
        check_range("eps_decay_frac", self.eps_decay_frac, 0.0, 1.0, low_inclusive=False, owner=o)
        check_range("beta", self.beta, 0.0, owner=o)
        check_range("threshold", self.threshold, owner=o)
        check_range("reg", self.reg, 0.0, low_inclusive=False, owner=o)
        if not isinstance(self.online_bandit, bool):
            raise ValueError(f"`online_bandit` of AEDQNConfig must be a bool; got "
                             f"{self.online_bandit!r}")

    @property
    def method_list(self) -> list[str]:
        """Methods as a list."""
        return _split(self.methods)

    @property
    def quest_list(self) -> list[str]:
        """Quests as a list."""
        return _split(self.quests)

    @property
    def size_list(self) -> list[str]:
        """Sizes as a list."""
        return _split(self.sizes)

    def steps(self, quest: str, size: str) -> int:
        """Environment steps of one run on ``(quest, size)``."""
        base = self.egg_steps if quest == "egg" else self.troll_steps
        return round(base * (self.large_step_factor if size == "large" else 1.0))


def make_env(cfg: AEDQNConfig, quest: str, size: str) -> TextQuestEnv:
    """The game of one cell of the grid."""
    n_verbs, n_nouns = SIZES[size]
    return TextQuestEnv(quest, n_verbs=n_verbs, n_nouns=n_nouns, game_seed=cfg.game_seed,
                        max_steps=cfg.max_steps)


def agent_config(cfg: AEDQNConfig, method: str, steps: int) -> AgentConfig:
    """The agent's hyperparameters for one run of ``steps`` environment steps."""
    return AgentConfig(
        mode=method, beta=cfg.beta, threshold=cfg.threshold, reg=cfg.reg,
        refresh_every=cfg.refresh_every, online_bandit=cfg.online_bandit,
        train_every=cfg.train_every, learn_start=min(200, steps // 10),
        eps_decay_steps=max(1, int(cfg.eps_decay_frac * steps)),
    )


def train_one(trial: Trial, cfg: AEDQNConfig, tctx: TrialContext) -> dict[str, Any]:
    """Train one agent on one game; return eval curves and summary metrics."""
    import torch

    torch.set_num_threads(tctx.threads)
    quest, size = trial.param("quest"), trial.param("size")
    env, eval_env = make_env(cfg, quest, size), make_env(cfg, quest, size)
    steps = cfg.steps(quest, size)
    agent = AEDQNAgent(len(env.vocab), env.obs_len, env.n_actions,
                       agent_config(cfg, trial.method, steps), seed=trial.seed)
    curve, summary = train_agent(
        env, agent, total_steps=steps, eval_env=eval_env, eval_every=cfg.eval_every,
        eval_episodes=cfg.eval_episodes, eval_epsilon=cfg.eval_epsilon,
        solve_success=cfg.solve_success, seed=trial.seed,
        progress=lambda it: tctx.progress(it, total=steps),
    )
    final = {"steps_to_solve": summary["steps_to_solve"], "solved": summary["solved"],
             "auc_return": float(np.mean([r["eval_return"] for r in curve])),
             "final_return": summary["final_return"],
             "final_success": summary["final_success"]}
    extra: dict[str, Any] = {"n_actions": env.n_actions, "gold_path_length": len(env.gold_path),
                             "observations": len(agent.table), "budget": steps, **summary}
    if agent.uses_elimination:
        last = curve[-1]
        for key in ("admissible_size", "gold_eliminated", "false_elim_visited",
                    "true_elim_visited", "admissible_size_visited"):
            extra[key] = float(last[key])
        extra["gold_eliminated_max"] = float(max(r["gold_eliminated"] for r in curve))
        extra["false_elim_visited_max"] = float(max(r["false_elim_visited"] for r in curve))
    clean = [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
             for r in curve]
    return {"final": final, "curve": clean, "extra": extra}


def _cell(results: list[Any], method: str, quest: str, size: str) -> list[dict[str, float]]:
    return [{**r.extra, **r.final} for r in results if r.trial.method == method
            and r.trial.param("quest") == quest and r.trial.param("size") == size]


def _plot_cell(ctx: RunContext, quest: str, size: str) -> None:
    """Return, success, AE-DQN's |A'| and its elimination quality against environment steps."""
    rows = [m for m in ctx.metrics if m.get("quest") == quest and m.get("size") == size]
    ae_rows = [r for r in rows if r["method"] == "ae-dqn"]
    fig, axes_grid = new_figure(ncols=4)
    axes = axes_grid[0]
    label = f"{quest} quest, {size} ({SIZES[size][0]}x{SIZES[size][1]}+8 commands)"
    plot_curves(axes[0], rows, "step", "eval_return", title=label)
    plot_curves(axes[1], rows, "step", "eval_success", title="evaluation success rate")
    plot_curves(axes[2], ae_rows, "step", "admissible_size", logy=True,
                title="AE-DQN mean |A'| on the gold path")
    quality = [{"method": name, "step": r["step"], "share eliminated": r.get(key)}
               for r in ae_rows for name, key in (("valid pairs (false)", "false_elim_visited"),
                                                  ("invalid pairs (true)", "true_elim_visited"))]
    plot_curves(axes[3], quality, "step", "share eliminated",
                title="AE-DQN elimination, visited observations")
    ctx.save_figure(fig, f"return_{quest}_{size}")


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
        "full": {"quests": "egg,troll", "egg_steps": 20000, "troll_steps": 40000,
                 "large_step_factor": 2.0,
                 "n_seeds": 5, "eval_every": 1000, "eval_episodes": 5, "max_steps": 100,
                 "refresh_every": 1000, "train_every": 4},
    },
)
def run(cfg: AEDQNConfig, ctx: RunContext) -> None:
    """Train the agents on every (quest, size); plot, tabulate and compare."""
    trials = ctx.make_trials(cfg.method_list, quest=cfg.quest_list, size=cfg.size_list)
    results = ctx.run_trials(train_one, trials)
    directions = {"steps_to_solve": False, "solved": True, "final_return": True,
                  "auc_return": True, "final_success": True}
    ctx.add_trial_results(
        results, higher_is_better=directions, label="method+params",
        # a run that never solved is recorded at its budget: a bound, not a measurement
        censored=lambda r, metric: metric == "steps_to_solve" and not r.final["solved"],
    )

    lines = ["| quest | size | \\|A\\| | steps | method | solved (eval) | steps to solve (median) |"
             " AUC eval return | final eval success | reached goal in training |"
             " first training success (median) |", "|" + "---|" * 11]
    elim = ["| quest | size | \\|A\\| | final \\|A'\\| gold path | mean \\|A'\\| visited |"
            " valid pairs eliminated (final, mean / max over seeds) | max during run |"
            " invalid pairs eliminated | gold cmds eliminated (final / max during run) |",
            "|" + "---|" * 9]
    speedups: dict[tuple[str, str], float] = {}
    gains: dict[tuple[str, str], float] = {}
    for quest in cfg.quest_list:
        for size in cfg.size_list:
            _plot_cell(ctx, quest, size)
            stats = {}
            for method in cfg.method_list:
                finals = _cell(results, method, quest, size)
                if not finals:
                    continue
                budget = int(finals[0]["budget"])
                solved = int(sum(f["solved"] for f in finals))
                med = float(np.median([f["steps_to_solve"] for f in finals]))
                auc = float(np.mean([f["auc_return"] for f in finals]))
                reached = sum(f["first_success_step"] < budget for f in finals)
                first_ok = float(np.median([f["first_success_step"] for f in finals]))
                stats[method] = {"solved": solved, "median": med, "auc": auc}
                censored = "≥" if med >= budget else ""
                lines.append(
                    f"| {quest} | {size} | {int(finals[0]['n_actions'])} | {budget} | {method} | "
                    f"{solved}/{len(finals)} | {censored}{med:.0f} | {auc:.3f} | "
                    f"{np.mean([f['final_success'] for f in finals]):.2f} | "
                    f"{reached}/{len(finals)} | {'≥' if first_ok >= budget else ''}"
                    f"{first_ok:.0f} |")
                if method == "ae-dqn":
                    fe = [f["false_elim_visited"] for f in finals]
                    elim.append(
                        f"| {quest} | {size} | {int(finals[0]['n_actions'])} | "
                        f"{np.mean([f['admissible_size'] for f in finals]):.1f} | "
                        f"{np.mean([f['admissible_size_visited'] for f in finals]):.1f} | "
                        f"{100 * np.mean(fe):.2f}% / {100 * max(fe):.2f}% | "
                        f"{100 * max(f['false_elim_visited_max'] for f in finals):.2f}% | "
                        f"{100 * np.mean([f['true_elim_visited'] for f in finals]):.1f}% | "
                        f"{np.mean([f['gold_eliminated'] for f in finals]):.1f} / "
                        f"{max(f['gold_eliminated_max'] for f in finals):.0f} |")
            if "dqn" in stats and "ae-dqn" in stats:
                dqn_s, ae_s = stats["dqn"], stats["ae-dqn"]
                # Steps to solve are censored at the budget: the ratio is then a bound.
                speedups[(quest, size)] = dqn_s["median"] / ae_s["median"]
                gains[(quest, size)] = ae_s["auc"] - dqn_s["auc"]
    ctx.add_section("Per-game summary", "\n".join(lines) + "\n\nAUC = mean evaluation return "
                    "over the run's evaluations (return = +1 at the goal, -0.01 per step). "
                    "'≥': never reached, censored at the budget (speed-ups are then bounds).")
    if "ae-dqn" in cfg.method_list:
        ctx.add_section("Elimination quality (AE-DQN)", "\n".join(elim) + "\n\n'Visited': "
                        "every distinct observation the agent has seen, judged against the "
                        "environment's true admissible set (the agent never reads it). 'Gold "
                        "cmds eliminated': commands of the shortest solution that are outside "
                        "A' in their gold-path state (lock-in).")
    ctx.note("speedup_steps_to_solve", {f"{q}/{s}": v for (q, s), v in speedups.items()})
    ctx.note("auc_gain_ae_minus_dqn", {f"{q}/{s}": v for (q, s), v in gains.items()})
    ctx.set_verdict(verdict(verdict_rows(results), preset=ctx.preset))


def verdict_rows(results: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per trial (method, seed, quest, size, finals, n_actions, A' size), plus per
    (quest, seed) the AUC gain of AE-DQN over DQN at each size (method ``gain_<size>``)."""
    rows: list[dict[str, Any]] = []
    for r in results:
        rows.append({**r.trial.as_dict(), **r.final, "n_actions": r.extra.get("n_actions"),
                     "admissible_size": r.extra.get("admissible_size")})
    auc = {(x["method"], x["quest"], x["size"], x["seed"]): x["auc_return"] for x in rows}
    for (m, quest, size, seed), a in list(auc.items()):
        if m == "ae-dqn" and ("dqn", quest, size, seed) in auc:
            rows.append({"method": f"gain_{size}", "quest": quest, "seed": seed,
                         "auc_gain": a - auc[("dqn", quest, size, seed)]})
    return rows


#: Practical margin on the AUC of the evaluation return (return = +1 at the goal, -0.01 per
#: step; an AUC gain of 0.05 is about 5% more of the evaluations ending at the goal).
AUC_MARGIN = 0.05
#: Power: AE-DQN must have shrunk the gold-path action set to at most this share of the commands
#: (the bandit needs samples per command before it can eliminate; below this the comparison
#: tests DQN against a DQN that eliminates almost nothing).
MAX_ADMISSIBLE_SHARE = 0.5
#: Control: the true-mask oracle (masked DQN) must solve the cell in at least this share of runs.
ORACLE_SOLVED_SHARE = 0.5


def verdict(rows: Sequence[Mapping[str, Any]], *, preset: str = "quick") -> Verdict:
    """The AE-DQN verdict (pure): per quest that ran at the largest size, AE-DQN's AUC beats
    DQN's there by ``AUC_MARGIN``; where both sizes ran, its gain is larger at ``large`` than at
    ``small``. Paired by seed within a (quest, size) cell.

    Controls per judged cell: the oracle solves in >= half of its runs (else the game is too hard
    for this budget: control-failed); AE-DQN's final |A'| on the gold path is <= half the
    commands (else underpowered: elimination never acted).
    """
    trials = [r for r in rows if r.get("method") in METHODS]
    sizes = {r["size"] for r in trials}
    top = "large" if "large" in sizes else "small"
    quests = sorted({r["quest"] for r in trials if r["size"] == top})
    comparisons, pre = [], []
    for q in quests:
        comparisons.append(Comparison(
            "auc_return", "ae-dqn", "dqn", margin=AUC_MARGIN, where={"quest": q, "size": top},
            label=f"AE-DQN vs DQN: AUC of eval return [{q}, {top}]"))
        if {"small", "large"} <= sizes:
            comparisons.append(Comparison(
                "auc_gain", "gain_large", "gain_small", margin=0.0, where={"quest": q},
                label=f"AUC gain over DQN: large vs small [{q}]"))
        oracle = [r for r in trials if r["method"] == "masked-dqn" and r["quest"] == q
                  and r["size"] == top]
        solved = sum(bool(r["solved"]) for r in oracle)
        pre.append(Precondition(
            f"true-mask oracle solves {q}/{top}",
            ok=bool(oracle) and solved >= ORACLE_SOLVED_SHARE * len(oracle),
            detail=f"solved {solved}/{len(oracle)}" if oracle else "oracle not run"))
        ae = [r for r in trials if r["method"] == "ae-dqn" and r["quest"] == q
              and r["size"] == top and r.get("admissible_size") is not None]
        share = [r["admissible_size"] / r["n_actions"] for r in ae]
        pre.append(Precondition(
            f"AE-DQN's bandit eliminated (final gold-path |A'| <= {MAX_ADMISSIBLE_SHARE:.0%} of "
            f"the commands) on {q}/{top}",
            ok=bool(share) and float(np.mean(share)) <= MAX_ADMISSIBLE_SHARE,
            detail=f"mean |A'| share {np.mean(share):.2f}" if share else "AE-DQN not run",
            reason="underpowered"))
    if not comparisons:
        comparisons.append(Comparison("auc_return", "ae-dqn", "dqn", margin=AUC_MARGIN))
    claim = Claim(
        statement=f"AE-DQN's area under the evaluation-return curve beats DQN's by > "
        f"{AUC_MARGIN:g} in the largest action space run, and its gain grows with the size of "
        "the action space (paired by seed)",
        comparisons=tuple(comparisons),
        min_pairs=3,
    )
    return judge(claim, rows, preconditions=pre, preset=preset)


__all__ = [
    "TUNING_GAME_SEED",
    "AEDQNConfig",
    "agent_config",
    "make_env",
    "run",
    "train_one",
    "verdict",
    "verdict_rows",
]
