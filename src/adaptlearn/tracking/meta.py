"""Offline training: the Siamese embedding and the learned updater (meta-training).

Meta-training follows the paper's idea - learn the online learning algorithm from many offline
videos - with the design of ``shared/specs/tracking.md`` section 1.2: episodes of ``K`` frames
cut from generated training videos, the model initialised from the episode's first frame,
teacher-forced samples at jittered ground-truth boxes, the updater applied frame by frame
(backpropagation through time over the episode), and the loss of the *updated* model measured on
*future* frames ``t + d`` for ``d`` in ``horizons`` (a next-frame-only loss rewards
over-adaptation). The base tracker's features are frozen.

References:
    Li, Xie, Zeng, Liu, arXiv 1806.07078; Bertinetto et al. 2016 (SiamFC training pairs and
    balanced logistic loss).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from adaptlearn.tracking.synth import TrackingSequence
from adaptlearn.tracking.trackers import (
    BaseTracker,
    SiameseEmbedding,
    TemplateTracker,
    crop_patches,
    reference_cues,
    response_cues,
)
from adaptlearn.tracking.updaters import LearnedUpdater, OnlineSample

__all__ = ["EpisodeBatch", "make_episodes", "meta_loss", "meta_train", "train_embedding"]


def _centre_size(box: np.ndarray) -> tuple[float, float, float, float]:
    x, y, w, h = (float(v) for v in box)
    return x + w / 2, y + h / 2, w, h


def train_embedding(
    sequences: Sequence[TrackingSequence],
    *,
    steps: int = 300,
    batch_size: int = 16,
    lr: float = 1e-2,
    max_gap: int = 20,
    channels: int = 16,
    generator: torch.Generator,
    progress: Iterable | None = None,
    device: torch.device | str | None = None,
) -> tuple[SiameseEmbedding, list[float]]:
    """Train the SiamFC-like embedding on exemplar/search pairs from training sequences.

    Pairs are at most ``max_gap`` frames apart; the search crop is centred on the ground truth
    plus a random shift (up to +-4 score cells), so labels are off-centre. Random draws come
    from the CPU ``generator`` (the same pairs on every device); the network trains on
    ``device`` (default CPU).

    Returns:
        The trained embedding (eval mode, frozen) and the loss per step.
    """
    model = SiameseEmbedding(channels).to(device or "cpu")
    tracker = TemplateTracker(model)
    dev = tracker.device
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    losses: list[float] = []
    rows = progress if progress is not None else range(steps)
    for _ in rows:
        ex_p, se_p, offsets = [], [], []
        for _ in range(batch_size):
            seq = sequences[int(torch.randint(len(sequences), (1,), generator=generator))]
            t_len = len(seq.boxes)
            i = int(torch.randint(t_len, (1,), generator=generator))
            j = min(
                max(i + int(torch.randint(-max_gap, max_gap + 1, (1,), generator=generator)), 0),
                t_len - 1,
            )
            cx, cy, w, h = _centre_size(seq.boxes[i])
            side = tracker.search_side(w, h)
            ex_p.append(
                crop_patches(
                    torch.from_numpy(seq.frames[i]).to(dev)[None, None],
                    torch.tensor([[cx, cy]]),
                    torch.tensor([side]),
                    64,
                )
            )
            cx, cy, w, h = _centre_size(seq.boxes[j])
            side = tracker.search_side(w, h) * float(
                torch.empty(1).uniform_(0.95, 1.05, generator=generator)
            )
            shift = (torch.rand(2, generator=generator) * 2 - 1) * 4 * tracker.cell_px  # patch px
            px = side / 64
            se_p.append(
                crop_patches(
                    torch.from_numpy(seq.frames[j]).to(dev)[None, None],
                    torch.tensor([[cx + float(shift[0]) * px, cy + float(shift[1]) * px]]),
                    torch.tensor([side]),
                    64,
                )
            )
            offsets.append(-shift / tracker.cell_px)
        z = tracker.candidate(tracker.features(torch.cat(ex_p)))
        x = tracker.features(torch.cat(se_p))
        loss = tracker.loss(z, x, tracker.label(torch.stack(offsets))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
    model.eval()
    model.requires_grad_(False)
    return model, losses


@dataclass
class EpisodeBatch:
    """Pre-cropped, teacher-forced episodes for meta-training (``B`` episodes, ``L`` frames).

    Attributes:
        model0: (B, *model_shape) initial models (from frame 0 of each episode, ground truth).
        ref: (B, 2) first-frame ``(peak, PSR)`` normalisers of the cues.
        search: (L, B, C, S, S) features of search crops of frames 1..L centred on the previous
            frame's ground truth (as in tracking).
        search_labels: (L, B, R, R) labels at the true displacement.
        sample: (L, B, C, S, S) features of crops at the jittered ground truth of frames 1..L.
        sample_labels: (L, B, R, R) labels at the jitter's displacement.
    """

    model0: Tensor
    ref: Tensor
    search: Tensor
    search_labels: Tensor
    sample: Tensor
    sample_labels: Tensor


@torch.no_grad()
def make_episodes(
    tracker: BaseTracker,
    sequences: Sequence[TrackingSequence],
    *,
    n_episodes: int,
    length: int,
    jitter: float = 0.08,
    generator: torch.Generator,
) -> EpisodeBatch:
    """Cut ``n_episodes`` random episodes of ``length + 1`` frames from ``sequences``.

    Random draws come from the CPU ``generator``; the crops and features are made on the
    tracker's device.
    """
    p = tracker.patch_size
    model0, refs, search, s_lab, sample, m_lab = [], [], [], [], [], []
    for _ in range(n_episodes):
        seq = sequences[int(torch.randint(len(sequences), (1,), generator=generator))]
        start = int(torch.randint(len(seq.boxes) - length, (1,), generator=generator))
        video = torch.from_numpy(seq.frames[start : start + length + 1]).to(tracker.device)[:, None]
        boxes = seq.boxes[start : start + length + 1]
        cx, cy, w, h = _centre_size(boxes[0])
        patch = crop_patches(
            video[0:1], torch.tensor([[cx, cy]]), torch.tensor([tracker.search_side(w, h)]), p
        )
        m0 = tracker.init_model(patch, generator)
        model0.append(m0)
        refs.append(
            torch.tensor(
                reference_cues(tracker, tracker.response(m0, tracker.features(patch))[0]),
                device=tracker.device,
            )
        )
        prev = (cx, cy, w, h)
        cen_s, side_s, off_s, cen_m, side_m, off_m = [], [], [], [], [], []
        for t in range(1, length + 1):
            cx, cy, w, h = _centre_size(boxes[t])
            side = tracker.search_side(prev[2], prev[3])
            cen_s.append((prev[0], prev[1]))
            side_s.append(side)
            off_s.append(
                (
                    (cx - prev[0]) * p / side / tracker.cell_px,
                    (cy - prev[1]) * p / side / tracker.cell_px,
                )
            )
            size = math.sqrt(w * h)
            jit = torch.randn(2, generator=generator) * jitter * size
            side_j = tracker.search_side(w, h)
            cen_m.append((cx + float(jit[0]), cy + float(jit[1])))
            side_m.append(side_j)
            off_m.append(
                (
                    -float(jit[0]) * p / side_j / tracker.cell_px,
                    -float(jit[1]) * p / side_j / tracker.cell_px,
                )
            )
            prev = (cx, cy, w, h)
        frames = video[1:]
        search.append(
            tracker.features(crop_patches(frames, torch.tensor(cen_s), torch.tensor(side_s), p))
        )
        sample.append(
            tracker.features(crop_patches(frames, torch.tensor(cen_m), torch.tensor(side_m), p))
        )
        s_lab.append(tracker.label(torch.tensor(off_s)))
        m_lab.append(tracker.label(torch.tensor(off_m)))
    return EpisodeBatch(
        model0=torch.cat(model0),
        ref=torch.stack(refs),
        search=torch.stack(search, 1),
        search_labels=torch.stack(s_lab, 1),
        sample=torch.stack(sample, 1),
        sample_labels=torch.stack(m_lab, 1),
    )


def meta_loss(
    tracker: BaseTracker,
    updater,
    episodes: EpisodeBatch,
    *,
    steps: int,
    horizons: Sequence[int] = (1, 5, 10),
) -> Tensor:
    """Mean future-frame loss of the models produced by ``updater`` over ``steps`` frames.

    ``L = 1/(steps |H|) sum_t sum_{d in H} loss(theta_t, search_{t+d}, label_{t+d})``;
    requires ``steps + max(horizons) <= episode length``. Differentiable w.r.t. the updater's
    parameters (truncated BPTT over the episode; the gradient inputs are detached).
    """
    length = episodes.search.shape[0]
    if steps + max(horizons) > length:
        raise ValueError(
            f"steps + max(horizons) = {steps + max(horizons)} exceeds the episode length {length}"
        )
    state = updater.init(episodes.model0, loss_fn=tracker.loss)
    theta = episodes.model0
    total = episodes.model0.new_zeros(())
    for t in range(steps):
        with torch.no_grad():
            resp = tracker.response(theta.detach(), episodes.search[t])
            cues = torch.stack(
                [
                    response_cues(
                        tracker,
                        resp[i],
                        (float(episodes.ref[i, 0]), float(episodes.ref[i, 1])),
                        t + 1,
                    )
                    for i in range(resp.shape[0])
                ]
            )
        feats = episodes.sample[t]
        sample = OnlineSample(tracker.candidate(feats), feats, episodes.sample_labels[t], cues)
        theta, state = updater.update(state, sample)
        for d in horizons:
            k = t + d
            total = (
                total + tracker.loss(theta, episodes.search[k], episodes.search_labels[k]).mean()
            )
    return total / (steps * len(horizons))


def meta_train(
    tracker: BaseTracker,
    updater: LearnedUpdater,
    sequences: Sequence[TrackingSequence],
    *,
    iterations: int = 40,
    batch_size: int = 16,
    steps: int = 10,
    horizons: Sequence[int] = (1, 5, 10),
    lr: float = 3e-3,
    jitter: float = 0.08,
    generator: torch.Generator,
    progress: Iterable | None = None,
) -> list[dict[str, float]]:
    """Meta-train ``updater`` with Adam (grad-norm clip 1) on fresh episodes each iteration.

    Returns:
        One row per iteration: ``iteration``, ``meta_loss``, ``gate_bias_gamma`` (sigmoid of
        the gate bias).
    """
    opt = torch.optim.Adam(updater.parameters(), lr=lr)
    rows: list[dict[str, float]] = []
    its = progress if progress is not None else range(iterations)
    for it in its:
        episodes = make_episodes(
            tracker,
            sequences,
            n_episodes=batch_size,
            length=steps + max(horizons),
            jitter=jitter,
            generator=generator,
        )
        loss = meta_loss(tracker, updater, episodes, steps=steps, horizons=horizons)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(updater.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            gamma = torch.sigmoid(updater.gate_head.bias).item()
        rows.append({"iteration": it, "meta_loss": float(loss.detach()), "gate_bias_gamma": gamma})
    return rows
