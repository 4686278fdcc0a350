"""Tracking speed: our trackers x updaters against OpenCV's KCF/MOSSE/CSRT on the same sequences.

Single thread (torch and OpenCV), generation excluded, ``init`` + every ``update`` timed as got10k
does. Prints frames per second (wall) and frames per CPU-second, and each one's ratio to
OpenCV KCF (the anchor), and the bytes each updater keeps between frames.
Run: ``.venv/bin/python benchmarks/tracking_speed.py [--frames 100] [--device cuda]``
(``--device`` moves our trackers and updaters; OpenCV stays on the CPU; each frame reads the
response peak back to the host, so on CUDA the per-frame times include the synchronisation).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from adaptlearn.core import pin_threads
from adaptlearn.tracking import (
    CorrelationFilterTracker,
    EMAUpdater,
    LearnedUpdater,
    NoUpdate,
    SGDUpdater,
    SiameseEmbedding,
    TemplateTracker,
    evaluate,
    generate_sequence,
    opencv_available,
    opencv_track_sequence,
    preset,
    state_nbytes,
    track_sequence,
)


def _timed(fn):
    wall0, cpu0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall0, time.process_time() - cpu0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--sequences", type=int, default=3)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--device", default="cpu", help="cpu or cuda[:N] for our trackers")
    parser.add_argument("--upscale", type=int, default=4, help="frame upscale for OpenCV")
    args = parser.parse_args()
    device = torch.device(args.device)
    pin_threads(1)
    torch.manual_seed(0)
    seqs = [
        generate_sequence(preset("default", size=args.size, length=args.frames), 5000 + i)
        for i in range(args.sequences)
    ]
    n_frames = sum(len(s.boxes) for s in seqs)
    template = TemplateTracker(SiameseEmbedding(8).eval().requires_grad_(False), device=device)
    rows = []
    if opencv_available():
        for name in ("kcf", "kcf-nothreshold", "mosse", "csrt"):
            res, wall, cpu = _timed(
                lambda name=name: [
                    opencv_track_sequence(name, s.frames, s.boxes[0], upscale=args.upscale)
                    for s in seqs
                ]
            )
            rows.append(
                (
                    f"opencv-{name}",
                    n_frames / wall,
                    n_frames / cpu,
                    np.mean(
                        [evaluate(b, s.boxes)["auc"] for (b, _), s in zip(res, seqs, strict=True)]
                    ),
                )
            )
    else:
        print(
            "OpenCV anchors skipped: `pip install opencv-contrib-python-headless` to enable them."
        )
    memory = []
    cf = CorrelationFilterTracker(device=device)
    for tname, tracker in (("cf", cf), ("template(untrained)", template)):
        for uname, updater in (
            ("none", NoUpdate()),
            ("ema", EMAUpdater(0.1)),
            ("sgd(1 step, window 10)", SGDUpdater(0.05, 1, 10)),
            ("learned", LearnedUpdater(coord_hidden=12, coord_layers=1, device=device).eval()),
        ):
            res, wall, cpu = _timed(
                lambda tr=tracker, up=updater: [
                    track_sequence(tr, up, s.frames, s.boxes[0]) for s in seqs
                ]
            )
            state = track_sequence(
                tracker, updater, seqs[0].frames, seqs[0].boxes[0], return_state=True
            )[2]
            memory.append((f"{tname}+{uname}", state_nbytes(state)))
            rows.append(
                (
                    f"{tname}+{uname}",
                    n_frames / wall,
                    n_frames / cpu,
                    np.mean(
                        [evaluate(b, s.boxes)["auc"] for (b, _), s in zip(res, seqs, strict=True)]
                    ),
                )
            )
    anchor = next((r for r in rows if r[0] == "opencv-kcf"), rows[0])
    print(
        f"{n_frames} frames of {args.size}x{args.size}, 1 thread, ours on {device}; "
        f"anchor = {anchor[0]}"
    )
    print(f"{'tracker':34s} {'fps(wall)':>10s} {'frames/CPU-s':>13s} {'x anchor':>9s} {'AUC':>6s}")
    for name, fps, fps_cpu, auc in rows:
        print(f"{name:34s} {fps:10.1f} {fps_cpu:13.1f} {fps / anchor[1]:9.3f} {auc:6.3f}")
    print("\nbytes each updater keeps between frames (current model excluded), after one sequence")
    for name, nbytes in memory:
        print(f"{name:34s} {nbytes / 1024:10.1f} KiB")


if __name__ == "__main__":
    main()
