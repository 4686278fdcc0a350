"""``tracking``: learned recurrent updater vs EMA and SGD updates on two base trackers.

For each base tracker (MOSSE-style correlation filter; SiamFC-like template tracker with a small
CNN trained offline on generated training videos) and each updater (none, EMA, SGD, learned),
run one-pass evaluation on held-out generated test sequences and report OTB success AUC,
precision at 20 px, success rate at IoU 0.5 and frames per second; OpenCV's KCF, CSRT and MOSSE
are external anchors on the same sequences when ``opencv-contrib-python-headless`` imports.
The EMA rate and the SGD step size are chosen on validation sequences (training-split textures),
the learned updater is meta-trained on training sequences; nothing of the test split is seen
before testing. The verdict compares learned vs EMA and vs SGD with paired bootstrap CIs of the
per-sequence AUC differences.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from adaptlearn.core import (
    RunContext,
    Trial,
    TrialContext,
    check_choice,
    check_int,
    check_range,
    new_figure,
    register,
)
from adaptlearn.tracking.meta import meta_train, train_embedding
from adaptlearn.tracking.metrics import PRECISION_THRESHOLDS, SUCCESS_THRESHOLDS, evaluate
from adaptlearn.tracking.opencv_anchor import (
    OPENCV_TRACKERS,
    opencv_available,
    opencv_track_sequence,
)
from adaptlearn.tracking.synth import PRESETS, generate_sequence, preset
from adaptlearn.tracking.trackers import CorrelationFilterTracker, TemplateTracker, track_sequence
from adaptlearn.tracking.updaters import EMAUpdater, LearnedUpdater, NoUpdate, SGDUpdater

BASE_TRACKERS = ("cf", "template")


def _floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


@dataclass
class TrackingConfig:
    """Config of the tracking experiment (defaults = the ``quick`` preset)."""

    scenario: str = "default"
    """Generator preset of all sequences: static, appearance, default or hard."""
    frame_size: int = 64
    """Frame side in pixels."""
    length: int = 60
    """Frames per generated sequence (train, validation and test)."""
    n_train: int = 24
    """Training-split sequences (embedding training and meta-training)."""
    n_val: int = 4
    """Validation sequences (training split, other seeds) for choosing the EMA rate and SGD lr."""
    n_test: int = 16
    """Held-out test sequences (test split, fixed seeds 5000 + i)."""
    trackers: str = "cf,template"
    """Comma-separated base trackers (cf, template)."""
    ema_gammas: str = "0.01,0.05,0.1,0.2"
    """EMA rates tried on validation."""
    sgd_lrs: str = "0.01,0.05"
    """Relative SGD step sizes tried on validation."""
    sgd_steps: int = 1
    """SGD steps per frame."""
    sgd_window: int = 10
    """Recent samples SGD keeps (plus the first one)."""
    embed_steps: int = 120
    """Adam steps training the template tracker's CNN."""
    embed_channels: int = 8
    """Channels of the template tracker's CNN."""
    meta_iterations: int = 8
    """Meta-training iterations of the learned updater (fresh episodes each)."""
    meta_batch: int = 8
    """Episodes per meta-training iteration."""
    meta_steps: int = 6
    """Updater steps per episode (BPTT length)."""
    meta_horizons: str = "1,3,6"
    """Future-frame offsets d of the meta-loss."""
    meta_lr: float = 3e-3
    """Adam learning rate of meta-training."""
    learned_init: str = "ema"
    """Initial rate of the learned updater: "ema" = the EMA rate chosen on validation (meta-training
    then has to improve on the tuned EMA), "fixed" = ``learned_init_gamma``."""
    learned_init_gamma: float = 0.05
    """Initial rate when ``learned_init="fixed"`` (untrained, the updater equals EMA(this))."""
    coord_hidden: int = 12
    """Hidden size of the coordinate-wise LSTM."""
    coord_layers: int = 1
    """Layers of the coordinate-wise LSTM."""
    with_lite: bool = False
    """Also evaluate the gate-only ("lite") learned updater."""
    opencv: bool = True
    """Run OpenCV KCF/CSRT/MOSSE anchors when opencv-contrib is installed."""
    n_seeds: int = 1
    """Seeds (each retrains the CNN and the updater and redraws train/val sequences)."""

    def validate(self) -> None:
        """Check every field; raise ValueError naming the field."""
        own = "TrackingConfig"
        check_choice("scenario", self.scenario, tuple(PRESETS), owner=own)
        check_choice("learned_init", self.learned_init, ("ema", "fixed"), owner=own)
        check_int("frame_size", self.frame_size, 48, 256, owner=own)
        check_int("length", self.length, 8, owner=own)
        for name in (
            "n_train",
            "n_val",
            "n_test",
            "sgd_steps",
            "sgd_window",
            "embed_steps",
            "embed_channels",
            "meta_iterations",
            "meta_batch",
            "meta_steps",
            "coord_hidden",
            "coord_layers",
            "n_seeds",
        ):
            check_int(name, getattr(self, name), 1, owner=own)
        for t in self.tracker_list:
            check_choice("trackers", t, BASE_TRACKERS, owner=own)
        if not self.tracker_list:
            raise ValueError(f"`trackers` of {own} must name at least one of {BASE_TRACKERS}")
        for name in ("ema_gammas", "sgd_lrs", "meta_horizons"):
            try:
                values = _floats(getattr(self, name))
            except ValueError as err:
                raise ValueError(
                    f"`{name}` of {own} must be comma-separated numbers; "
                    f"got {getattr(self, name)!r}"
                ) from err
            if not values:
                raise ValueError(f"`{name}` of {own} must not be empty")
        for g in _floats(self.ema_gammas):
            check_range("ema_gammas", g, 0.0, 1.0, owner=own)
        for lr in _floats(self.sgd_lrs):
            check_range("sgd_lrs", lr, 0.0, 10.0, low_inclusive=False, owner=own)
        horizons = [int(h) for h in _floats(self.meta_horizons)]
        if min(horizons) < 1:
            raise ValueError(f"`meta_horizons` of {own} must be >= 1; got {self.meta_horizons!r}")
        if self.meta_steps + max(horizons) + 1 > self.length:
            raise ValueError(f"`meta_steps` + max(`meta_horizons`) of {own} must be < `length`")
        check_range("meta_lr", self.meta_lr, 0.0, 1.0, low_inclusive=False, owner=own)
        check_range(
            "learned_init_gamma",
            self.learned_init_gamma,
            0.0,
            1.0,
            low_inclusive=False,
            high_inclusive=False,
            owner=own,
        )

    @property
    def tracker_list(self) -> list[str]:
        return [t.strip() for t in self.trackers.split(",") if t.strip()]


def _sequences(cfg: TrackingConfig, seed: int):
    gen_cfg = preset(cfg.scenario, size=cfg.frame_size, length=cfg.length)
    train = [
        generate_sequence(gen_cfg, 100_000 * (seed + 1) + i, "train") for i in range(cfg.n_train)
    ]
    val = [
        generate_sequence(gen_cfg, 100_000 * (seed + 1) + 50_000 + i, "train")
        for i in range(cfg.n_val)
    ]
    test = [generate_sequence(gen_cfg, 5000 + i, "test") for i in range(cfg.n_test)]
    return train, val, test


def _evaluate(tracker, updater, sequences, seed: int) -> dict:
    rows = []
    for k, seq in enumerate(sequences):
        cpu0 = time.process_time()
        boxes, fps = track_sequence(tracker, updater, seq.frames, seq.boxes[0], seed=seed + k)
        cpu = time.process_time() - cpu0
        scores = evaluate(boxes, seq.boxes)
        rows.append(
            {
                "auc": scores["auc"],
                "precision20": scores["precision20"],
                "success50": scores["success50"],
                "fps": fps,
                "fps_cpu": len(seq.boxes) / max(cpu, 1e-9),
                "success": scores["success"].tolist(),
                "precision": scores["precision"].tolist(),
            }
        )
    return _pack(rows)


def _pack(rows: list[dict]) -> dict:
    return {
        "auc": [r["auc"] for r in rows],
        "precision20": [r["precision20"] for r in rows],
        "success50": [r["success50"] for r in rows],
        "fps": [r["fps"] for r in rows],
        "fps_cpu": [r["fps_cpu"] for r in rows],
        "success_curve": np.mean([r["success"] for r in rows], axis=0).tolist(),
        "precision_curve": np.mean([r["precision"] for r in rows], axis=0).tolist(),
    }


def tracker_trial(trial: Trial, cfg: TrackingConfig, tctx: TrialContext) -> dict:
    """Train (embedding, updater), select EMA/SGD settings on validation, evaluate on test."""
    gen = torch.Generator().manual_seed(trial.seed)
    train, val, test = _sequences(cfg, trial.seed)
    curve: list[dict] = []
    extra: dict = {"per_updater": {}, "selection": {}}
    if trial.method == "opencv":
        for name in OPENCV_TRACKERS:
            rows = []
            for seq in test:
                cpu0 = time.process_time()
                boxes, fps = opencv_track_sequence(name, seq.frames, seq.boxes[0])
                cpu = time.process_time() - cpu0
                s = evaluate(boxes, seq.boxes)
                rows.append(
                    {
                        "auc": s["auc"],
                        "precision20": s["precision20"],
                        "success50": s["success50"],
                        "fps": fps,
                        "fps_cpu": len(seq.boxes) / max(cpu, 1e-9),
                        "success": s["success"].tolist(),
                        "precision": s["precision"].tolist(),
                    }
                )
            extra["per_updater"][f"opencv-{name}"] = _pack(rows)
        return {"final": {}, "extra": extra}
    if trial.method == "template":
        embedding, losses = train_embedding(
            train,
            steps=cfg.embed_steps,
            channels=cfg.embed_channels,
            generator=gen,
            progress=tctx.progress(range(cfg.embed_steps), desc=f"{trial.key} embedding"),
        )
        curve += [{"phase": "embedding", "step": i, "embed_loss": v} for i, v in enumerate(losses)]
        tracker = TemplateTracker(embedding)
    else:
        tracker = CorrelationFilterTracker()

    def val_auc(updater) -> float:
        return float(np.mean(_evaluate(tracker, updater, val, seed=trial.seed)["auc"]))

    ema_scores = {g: val_auc(EMAUpdater(g)) for g in _floats(cfg.ema_gammas)}
    best_gamma = max(ema_scores, key=ema_scores.get)
    sgd_scores = {
        lr: val_auc(SGDUpdater(lr, cfg.sgd_steps, cfg.sgd_window)) for lr in _floats(cfg.sgd_lrs)
    }
    best_lr = max(sgd_scores, key=sgd_scores.get)
    extra["selection"] = {
        "ema_val_auc": {str(k): v for k, v in ema_scores.items()},
        "ema_gamma": best_gamma,
        "sgd_val_auc": {str(k): v for k, v in sgd_scores.items()},
        "sgd_lr": best_lr,
    }

    horizons = [int(h) for h in _floats(cfg.meta_horizons)]
    updaters = {
        "none": NoUpdate(),
        "ema": EMAUpdater(best_gamma),
        "sgd": SGDUpdater(best_lr, cfg.sgd_steps, cfg.sgd_window),
    }
    variants = [("learned", True)] + ([("learned-lite", False)] if cfg.with_lite else [])
    for name, coordinatewise in variants:
        init_gamma = cfg.learned_init_gamma if cfg.learned_init == "fixed" else best_gamma
        init_gamma = min(max(init_gamma, 1e-3), 1 - 1e-3)  # the gate's logit must be finite
        learned = LearnedUpdater(
            init_gamma=init_gamma,
            coordinatewise=coordinatewise,
            coord_hidden=cfg.coord_hidden,
            coord_layers=cfg.coord_layers,
        )
        rows = meta_train(
            tracker,
            learned,
            train,
            iterations=cfg.meta_iterations,
            batch_size=cfg.meta_batch,
            steps=cfg.meta_steps,
            horizons=horizons,
            lr=cfg.meta_lr,
            generator=gen,
            progress=tctx.progress(range(cfg.meta_iterations), desc=f"{trial.key} {name}"),
        )
        curve += [{"phase": name, **r} for r in rows]
        learned.eval()
        updaters[name] = learned
        extra["selection"][f"{name}_params"] = sum(p.numel() for p in learned.parameters())
    for name, updater in updaters.items():
        extra["per_updater"][f"{trial.method}+{name}"] = _evaluate(
            tracker, updater, test, seed=trial.seed
        )
    final = {f"{k}.auc": float(np.mean(v["auc"])) for k, v in extra["per_updater"].items()}
    return {"final": final, "curve": curve, "extra": extra}


def _paired(
    a: list[float], b: list[float], seed: int, n_boot: int = 2000
) -> tuple[float, float, float, int]:
    """Mean of a - b, its 95% paired bootstrap CI, and the number of sequences where a > b."""
    diff = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, len(diff), (n_boot, len(diff)))].mean(axis=1)
    return (
        float(diff.mean()),
        float(np.quantile(boots, 0.025)),
        float(np.quantile(boots, 0.975)),
        int((diff > 0).sum()),
    )


@register(
    "tracking",
    family="tracking",
    paper="Li, Xie, Zeng, Liu. Learning to Update for Object Tracking with Recurrent Meta-learner. "
    "arXiv 1806.07078 (IEEE TIP 2019)",
    claim="A recurrent updater meta-trained over offline videos improves both a template-based "
    "and a "
    "correlation-filter tracker over EMA and SGD model updates (success AUC / precision) and runs "
    "in real time.",
    config=TrackingConfig,
    presets={
        "tiny": {
            "frame_size": 48,
            "length": 16,
            "n_train": 3,
            "n_val": 1,
            "n_test": 2,
            "ema_gammas": "0.05,0.2",
            "sgd_lrs": "0.05",
            "embed_steps": 3,
            "meta_iterations": 2,
            "meta_batch": 2,
            "meta_steps": 2,
            "meta_horizons": "1,2",
            "coord_hidden": 4,
            "opencv": True,
        },
        "full": {
            "frame_size": 96,
            "length": 150,
            "n_train": 160,
            "n_val": 40,
            "n_test": 200,
            "ema_gammas": "0.01,0.025,0.05,0.1,0.125,0.2",
            "sgd_lrs": "0.003,0.01,0.03,0.1",
            "sgd_steps": 5,
            "embed_steps": 1500,
            "embed_channels": 16,
            "meta_iterations": 300,
            "meta_batch": 32,
            "meta_steps": 20,
            "meta_horizons": "1,5,10",
            "coord_hidden": 20,
            "coord_layers": 2,
            "with_lite": True,
            "n_seeds": 3,
        },
    },
)
def run(cfg: TrackingConfig, ctx: RunContext) -> None:
    """Evaluate every base tracker x updater (+ OpenCV anchors); plot success/precision; verdict."""
    methods = list(cfg.tracker_list)
    use_cv = cfg.opencv and opencv_available()
    if use_cv:
        methods.append("opencv")
    results = ctx.run_trials(tracker_trial, ctx.make_trials(methods))
    per: dict[str, dict[str, list]] = {}
    curves: dict[str, list] = {}
    selection_lines = []
    for r in results:
        for name, data in r.extra["per_updater"].items():
            slot = per.setdefault(
                name, {"auc": [], "precision20": [], "success50": [], "fps": [], "fps_cpu": []}
            )
            for metric in slot:
                slot[metric].extend(data[metric])
            curves.setdefault(name, []).append((data["success_curve"], data["precision_curve"]))
        sel = r.extra.get("selection") or {}
        if sel:
            selection_lines.append(
                f"| {r.trial.method} | {r.trial.seed} | {sel['ema_gamma']} | {sel['sgd_lr']} | "
                f"{sel.get('learned_params', '')} |"
            )
        for row in r.curve:
            ctx.log(method=r.trial.method, seed=r.trial.seed, **row)
    directions = {
        "auc": True,
        "precision20": True,
        "success50": True,
        "fps": True,
        "fps_cpu": True,
    }
    for name, slot in per.items():
        for metric, values in slot.items():
            for v in values:
                ctx.add_result(name, metric, v, higher_is_better=directions[metric])

    # success and precision plots (mean over test sequences and seeds)
    fig, axes = new_figure(1, 2, width=6.0, height=4.2)
    for name in sorted(curves):
        succ = np.mean([c[0] for c in curves[name]], axis=0)
        prec = np.mean([c[1] for c in curves[name]], axis=0)
        auc = float(np.mean(per[name]["auc"]))
        p20 = float(np.mean(per[name]["precision20"]))
        style = ":" if name.startswith("opencv") else ("-" if name.startswith("cf") else "--")
        axes[0, 0].plot(SUCCESS_THRESHOLDS, succ, style, label=f"{name} [{auc:.3f}]")
        axes[0, 1].plot(PRECISION_THRESHOLDS, prec, style, label=f"{name} [{p20:.3f}]")
    axes[0, 0].set(
        xlabel="overlap threshold", ylabel="success rate", title="Success plots of OPE (AUC)"
    )
    axes[0, 1].set(
        xlabel="location error threshold (px)",
        ylabel="precision",
        title="Precision plots of OPE (P@20)",
    )
    for ax in axes[0]:
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="x-small")
    ctx.save_figure(fig, "success_precision")

    # meta-training curves
    meta_rows = [row for row in ctx.metrics if row.get("phase") == "learned"]
    if meta_rows:
        fig, ax = new_figure()
        for method in sorted({row["method"] for row in meta_rows}):
            rows = [
                row for row in meta_rows if row["method"] == method and row["seed"] == ctx.seeds[0]
            ]
            ax.plot(
                [row["iteration"] for row in rows], [row["meta_loss"] for row in rows], label=method
            )
        ax.set(xlabel="meta-training iteration", ylabel="future-frame loss", title="Meta-training")
        ax.legend(fontsize="small")
        ax.grid(True, alpha=0.3)
        ctx.save_figure(fig, "meta_training")

    # paired comparisons and the verdict
    lines = [
        "| tracker | learned - ema (AUC) [95% CI] | wins | learned - sgd (AUC) [95% CI] | wins "
        "| learned frames/CPU-s |",
        "|---|---|---|---|---|---|",
    ]
    signs, fps_learned = [], []
    for t in cfg.tracker_list:
        learned = per[f"{t}+learned"]["auc"]
        cells = [t]
        for base in ("ema", "sgd"):
            d, lo, hi, wins = _paired(learned, per[f"{t}+{base}"]["auc"], ctx.seed)
            signs.append(1 if lo > 0 else (-1 if hi < 0 else 0))
            cells += [f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]", f"{wins}/{len(learned)}"]
        # frames per CPU-second: wall-clock fps on a shared VM measures the neighbours' load
        fps = float(np.median(per[f"{t}+learned"]["fps_cpu"]))
        fps_learned.append(fps)
        cells.append(f"{fps:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    ctx.add_section("Learned updater vs baselines (paired over test sequences)", "\n".join(lines))
    ctx.add_section(
        "Settings chosen on validation sequences",
        "| tracker | seed | EMA gamma | SGD lr | learned params |\n|---|---|---|---|---|\n"
        + "\n".join(selection_lines)
        + f"\n\n`fps` = got10k's wall-clock frames per second, `fps_cpu` = frames per CPU-second; "
        f"one torch/OpenCV thread, device {ctx.device}, machine shared with other jobs; "
        "OpenCV anchors "
        + ("ran." if use_cv else "skipped (opencv-contrib-python-headless not installed)."),
    )
    ctx.note("opencv_anchors", bool(use_cv))
    realtime = min(fps_learned) >= 25.0
    n_cmp = len(signs)
    better = sum(s > 0 for s in signs)
    worse = sum(s < 0 for s in signs)
    summary = "; ".join(
        f"{t}: learned {np.mean(per[f'{t}+learned']['auc']):.3f} "
        f"vs EMA {np.mean(per[f'{t}+ema']['auc']):.3f}"
        f" vs SGD {np.mean(per[f'{t}+sgd']['auc']):.3f}"
        f" vs none {np.mean(per[f'{t}+none']['auc']):.3f}"
        for t in cfg.tracker_list
    )
    if better == n_cmp and realtime:
        supported: bool | None = True
        head = "Supported"
    elif worse > 0 or not realtime:
        supported = False
        head = "Not supported"
    else:
        supported = None
        head = "Inconclusive"
    ctx.set_verdict(
        f"{head}: the learned updater is significantly better in {better}/{n_cmp} comparisons and "
        f"significantly worse in {worse}/{n_cmp} (paired bootstrap over "
        f"{len(per[f'{cfg.tracker_list[0]}+ema']['auc'])} "
        f"test runs, success AUC). {summary}. Learned-updater speed {min(fps_learned):.0f} "
        f"frames per CPU-second (slower tracker, median per sequence, 1 thread; real time "
        f">= 25: {realtime}).",
        supported=supported,
    )
