"""Offline data for the Selective-Backprop experiments: bundled digits, a generated set, noise.

Nothing here downloads: :func:`load_digit_images` reads scikit-learn's bundled ``load_digits``
(1,797 real 8x8 scans), :func:`make_teacher_classification` generates a harder set, and
:func:`corrupt_labels` applies the reference label-noise protocol.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import torch
from torch import Tensor

from adaptlearn.core import check_int, check_positive_int, check_probability, check_range

__all__ = [
    "Dataset",
    "ShuffledLoader",
    "corrupt_labels",
    "load_digit_images",
    "make_cluster_classification",
    "make_teacher_classification",
]


class Dataset(NamedTuple):
    """Train/test tensors. ``x_*``: ``[N, ...]`` float32; ``y_*``: ``[N]`` int64."""

    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    num_classes: int

    def to(self, device: torch.device | str) -> Dataset:
        """The same data on ``device`` (the generators build it on the CPU, seeded)."""
        return Dataset(self.x_train.to(device), self.y_train.to(device), self.x_test.to(device),
                       self.y_test.to(device), self.num_classes)


def make_teacher_classification(
    n_train: int,
    n_test: int,
    *,
    n_features: int = 32,
    n_classes: int = 10,
    hidden: int = 64,
    seed: int = 0,
) -> Dataset:
    """Labels from a random two-layer tanh "teacher" network on Gaussian inputs.

    ``x ~ N(0, I_d)``, ``y = argmax(W2 tanh(W1 x + b1) + b2)`` with Gaussian weights scaled by
    ``1/sqrt(fan_in)`` (times 2 in the first layer, so the boundaries are curved). The task is
    realisable (zero Bayes error) but most points lie far from a boundary and are learnt in an
    epoch or two, while the few near the curved boundaries need long training - the "many easy,
    some hard" regime in which Selective-Backprop can pay off.

    Args:
        n_train: training examples.
        n_test: test examples.
        n_features: input dimension ``d``.
        n_classes: number of classes.
        hidden: teacher width.
        seed: seed of the teacher and the inputs.

    Returns:
        A :class:`Dataset` with ``x`` of shape ``[N, d]``.
    """
    check_positive_int("n_train", n_train)
    check_positive_int("n_test", n_test)
    check_positive_int("n_features", n_features)
    check_int("n_classes", n_classes, 2)
    check_positive_int("hidden", hidden)
    gen = torch.Generator().manual_seed(int(seed))
    w1 = 2.0 * torch.randn(n_features, hidden, generator=gen) / n_features**0.5
    b1 = 0.5 * torch.randn(hidden, generator=gen)
    w2 = torch.randn(hidden, n_classes, generator=gen) / hidden**0.5
    b2 = 0.1 * torch.randn(n_classes, generator=gen)
    x = torch.randn(n_train + n_test, n_features, generator=gen)
    y = (torch.tanh(x @ w1 + b1) @ w2 + b2).argmax(dim=1)
    return Dataset(x[:n_train], y[:n_train], x[n_train:], y[n_train:], n_classes)


def make_cluster_classification(
    n_train: int,
    n_test: int,
    *,
    n_features: int = 40,
    n_informative: int = 24,
    n_classes: int = 10,
    clusters_per_class: int = 3,
    class_sep: float = 1.5,
    seed: int = 0,
) -> Dataset:
    """Gaussian-cluster classification from ``sklearn.datasets.make_classification``, standardised.

    Each class is a union of ``clusters_per_class`` Gaussian clusters on the vertices of a
    hypercube in the informative subspace (plus redundant linear combinations and noise
    features); no labels are flipped. Most points are far from other classes' clusters and easy;
    the overlaps are hard. Features are standardised with the training-set mean and std.

    Returns:
        A :class:`Dataset` with ``x`` of shape ``[N, n_features]``.
    """
    from sklearn.datasets import make_classification

    check_positive_int("n_train", n_train)
    check_positive_int("n_test", n_test)
    check_int("n_classes", n_classes, 2)
    check_range("class_sep", class_sep, 0.0, low_inclusive=False)
    x, y = make_classification(
        n_samples=n_train + n_test, n_features=n_features, n_informative=n_informative,
        n_redundant=min(8, n_features - n_informative), n_classes=n_classes,
        n_clusters_per_class=clusters_per_class, class_sep=class_sep, flip_y=0.0,
        random_state=int(seed),
    )
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.int64)
    mean, std = xt[:n_train].mean(0), xt[:n_train].std(0).clamp(min=1e-6)
    xt = (xt - mean) / std
    return Dataset(xt[:n_train], yt[:n_train], xt[n_train:], yt[n_train:], n_classes)


def load_digit_images(
    *, test_fraction: float = 0.25, noise_std: float = 0.1, seed: int = 0
) -> Dataset:
    """scikit-learn's bundled 8x8 digits, augmented with 1-pixel shifts and pixel noise.

    Originals are split into train and test first (so no augmented copy of a test image is in
    the training set); each image then appears in 9 shifted copies (``dx, dy in {-1, 0, 1}``,
    zero fill) with ``N(0, noise_std)`` noise on pixels scaled to ``[0, 1]``.

    Returns:
        A :class:`Dataset` with ``x`` of shape ``[N, 1, 8, 8]`` (about 12k train, 4k test).
    """
    from sklearn.datasets import load_digits

    check_range("test_fraction", test_fraction, 0.0, 1.0, low_inclusive=False,
                high_inclusive=False)
    check_range("noise_std", noise_std, 0.0)
    digits = load_digits()
    images = torch.as_tensor(digits.images / 16.0, dtype=torch.float32)
    labels = torch.as_tensor(digits.target, dtype=torch.int64)
    gen = torch.Generator().manual_seed(int(seed))
    order = torch.randperm(len(labels), generator=gen)
    n_test = round(test_fraction * len(labels))
    splits = []
    for part in (order[n_test:], order[:n_test]):
        imgs, labs = images[part], labels[part]
        padded = torch.nn.functional.pad(imgs, (1, 1, 1, 1))
        shifted = [padded[:, 1 + dy : 9 + dy, 1 + dx : 9 + dx]
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        x = torch.cat(shifted)
        x = x + noise_std * torch.randn(x.shape, generator=gen)
        splits.append((x.unsqueeze(1), labs.repeat(9)))
    (x_tr, y_tr), (x_te, y_te) = splits
    return Dataset(x_tr, y_tr, x_te, y_te, 10)


def corrupt_labels(
    labels: Tensor, fraction: float, *, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Shuffle the labels of a random ``fraction`` of examples among themselves.

    The reference protocol (``--randomize-labels f``) shuffles the labels of the first ``f`` of
    the training set; with a random subset instead of the first rows the effect is the same on
    shuffled data. The class histogram is unchanged; an example counts as corrupted if its label
    changed.

    Args:
        labels: ``[N]`` int64.
        fraction: share of examples whose labels are shuffled, in ``[0, 1]``.
        seed: seed of the subset and the permutation.

    Returns:
        ``(noisy_labels [N], corrupted_mask [N] bool)``.
    """
    check_probability("fraction", fraction)
    gen = torch.Generator().manual_seed(int(seed))
    n = labels.numel()
    chosen = torch.randperm(n, generator=gen)[: round(fraction * n)]
    noisy = labels.clone()
    noisy[chosen] = labels[chosen][torch.randperm(chosen.numel(), generator=gen)]
    return noisy, noisy != labels


class ShuffledLoader:
    """In-memory loader yielding ``(inputs, targets, indices)`` in a fresh random order each epoch.

    Much cheaper per batch than ``torch.utils.data.DataLoader`` for tensors already in memory,
    so loader overhead does not blur the forward/backward costs being measured.

    Args:
        inputs: ``[N, ...]``.
        targets: ``[N]``.
        batch_size: examples per batch (the last batch of an epoch may be smaller).
        seed: seed of the shuffling generator (a CPU generator: the order does not depend on the
            device).
        device: where the data is kept and batches are yielded (moved once, here). Default: where
            ``inputs`` and ``targets`` already are. The yielded indices stay on the CPU.
    """

    def __init__(self, inputs: Tensor, targets: Tensor, batch_size: int, *, seed: int = 0,
                 device: torch.device | str | None = None) -> None:
        if inputs.shape[0] != targets.shape[0]:
            raise ValueError(f"inputs and targets differ in length: {inputs.shape[0]} vs "
                             f"{targets.shape[0]}")
        if device is not None:
            inputs, targets = inputs.to(device), targets.to(device)
        if inputs.device != targets.device:
            raise ValueError(f"inputs and targets are on different devices: {inputs.device} vs "
                             f"{targets.device} (pass device= to move both)")
        self.inputs = inputs
        self.targets = targets
        self.batch_size = check_positive_int("batch_size", batch_size, owner="ShuffledLoader")
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return -(-self.inputs.shape[0] // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        order = torch.randperm(self.inputs.shape[0], generator=self.generator)
        on_data = order.to(self.inputs.device)  # one copy per epoch, not per batch
        for start in range(0, len(order), self.batch_size):
            rows = on_data[start : start + self.batch_size]
            yield self.inputs[rows], self.targets[rows], order[start : start + self.batch_size]
