"""Selective-Backprop, Stale-SB and AdaptSB: backpropagate only the examples that matter.

Two layers, as in composer: pure tensor functions (:mod:`adaptlearn.selection.functional`) and
stateful selectors (:class:`SelectiveBackprop`, :class:`StaleSB`, :class:`AdaptSB`,
:class:`RandomSubset`) used from any loop through :func:`selective_batches` (plain PyTorch), or
through :class:`SelectiveBackpropAlgorithm`, which runs on the events ``FIT_START``,
``AFTER_DATALOADER``, ``AFTER_LOSS`` and ``EPOCH_END`` of an event-firing loop such as
:class:`Trainer`. The Kath18 importance-sampling baseline the paper compares with is
:class:`Kath18ImportanceSampling`, an algorithm on the same events. See ``README.md`` in this
folder for the method card.

References:
    A. H. Jiang et al., "Accelerating Deep Learning by Focusing on the Biggest Losers",
    arXiv:1910.00762 (2019).
"""

from adaptlearn.selection.data import Dataset as Dataset
from adaptlearn.selection.data import ShuffledLoader as ShuffledLoader
from adaptlearn.selection.data import corrupt_labels as corrupt_labels
from adaptlearn.selection.data import load_digit_images as load_digit_images
from adaptlearn.selection.data import make_cluster_classification as make_cluster_classification
from adaptlearn.selection.data import make_teacher_classification as make_teacher_classification
from adaptlearn.selection.events import Algorithm as Algorithm
from adaptlearn.selection.events import Event as Event
from adaptlearn.selection.events import LoopState as LoopState
from adaptlearn.selection.events import SelectiveBackpropAlgorithm as SelectiveBackpropAlgorithm
from adaptlearn.selection.functional import bernoulli_select as bernoulli_select
from adaptlearn.selection.functional import expected_selection_rate as expected_selection_rate
from adaptlearn.selection.functional import loss_percentiles as loss_percentiles
from adaptlearn.selection.functional import persistence_weights as persistence_weights
from adaptlearn.selection.functional import (
    random_selection_probabilities as random_selection_probabilities,
)
from adaptlearn.selection.functional import rescale_to_mean as rescale_to_mean
from adaptlearn.selection.functional import selection_probabilities as selection_probabilities
from adaptlearn.selection.history import LossHistory as LossHistory
from adaptlearn.selection.importance import (
    Kath18ImportanceSampling as Kath18ImportanceSampling,
)
from adaptlearn.selection.importance import variance_reduction as variance_reduction
from adaptlearn.selection.loop import SelectionPipeline as SelectionPipeline
from adaptlearn.selection.loop import SelectionStats as SelectionStats
from adaptlearn.selection.loop import check_loss_fn as check_loss_fn
from adaptlearn.selection.loop import eval_mode_losses as eval_mode_losses
from adaptlearn.selection.loop import selective_batches as selective_batches
from adaptlearn.selection.selectors import AdaptSB as AdaptSB
from adaptlearn.selection.selectors import RandomSubset as RandomSubset
from adaptlearn.selection.selectors import SelectiveBackprop as SelectiveBackprop
from adaptlearn.selection.selectors import StaleSB as StaleSB
from adaptlearn.selection.trainer import Trainer as Trainer
from adaptlearn.selection.trainer import TrainerCounters as TrainerCounters

__all__ = [
    "AdaptSB", "Algorithm", "Dataset", "Event", "Kath18ImportanceSampling", "LoopState",
    "LossHistory", "RandomSubset",
    "SelectionPipeline", "SelectionStats", "SelectiveBackprop", "SelectiveBackpropAlgorithm",
    "ShuffledLoader", "StaleSB", "Trainer", "TrainerCounters", "bernoulli_select",
    "check_loss_fn", "corrupt_labels", "eval_mode_losses", "expected_selection_rate",
    "load_digit_images",
    "loss_percentiles", "make_cluster_classification", "make_teacher_classification",
    "persistence_weights",
    "random_selection_probabilities", "rescale_to_mean", "selection_probabilities",
    "selective_batches", "variance_reduction",
]
