"""Mainstream: dynamic stem sharing for concurrent video analytics (Jiang et al., ATC 2018).

N applications analyse one video stream; each is a classifier fine-tuned from a shared base model
with its first ``k`` layers frozen, so apps with overlapping frozen prefixes can share that
computation. Mainstream chooses each app's depth ``k`` and sampling rate ``f`` to maximise mean
event-level F1 under a compute budget.

Pieces:

* value types: :class:`StemOption` (a(k), q(k) at depth k), :class:`AppSpec`,
  :class:`AppConfig`, :class:`Schedule`;
* :class:`CostModel` (shared stems run once at the highest rate of their sharers);
* the event-F1 model (:func:`event_f1`, :func:`event_miss_probability`) and a Monte Carlo check
  (:func:`simulate_event_miss`);
* the scheduler :func:`schedule` (paper's greedy, exhaustive) and the baselines
  :func:`no_sharing`, :func:`max_sharing`;
* the profiler (:class:`StemCNN`, :func:`fine_tune`, :func:`measure_stem_option`,
  :func:`profile_layers`) and a synthetic video generator (:mod:`adaptlearn.mainstream.video`).
"""

from adaptlearn.mainstream.cost import CostModel as CostModel
from adaptlearn.mainstream.f1 import empirical_event_f1 as empirical_event_f1
from adaptlearn.mainstream.f1 import estimate_correlation as estimate_correlation
from adaptlearn.mainstream.f1 import event_f1 as event_f1
from adaptlearn.mainstream.f1 import event_miss_probability as event_miss_probability
from adaptlearn.mainstream.f1 import event_precision_recall as event_precision_recall
from adaptlearn.mainstream.f1 import sampled_frames as sampled_frames
from adaptlearn.mainstream.f1 import simulate_event_miss as simulate_event_miss
from adaptlearn.mainstream.profiler import LayerProfile as LayerProfile
from adaptlearn.mainstream.profiler import StemCNN as StemCNN
from adaptlearn.mainstream.profiler import fine_tune as fine_tune
from adaptlearn.mainstream.profiler import measure_stem_option as measure_stem_option
from adaptlearn.mainstream.profiler import predict_scores as predict_scores
from adaptlearn.mainstream.profiler import profile_layers as profile_layers
from adaptlearn.mainstream.profiler import train_classifier as train_classifier
from adaptlearn.mainstream.scheduler import DEFAULT_FPS_OPTIONS as DEFAULT_FPS_OPTIONS
from adaptlearn.mainstream.scheduler import max_sharing as max_sharing
from adaptlearn.mainstream.scheduler import no_sharing as no_sharing
from adaptlearn.mainstream.scheduler import schedule as schedule
from adaptlearn.mainstream.types import AppConfig as AppConfig
from adaptlearn.mainstream.types import AppSpec as AppSpec
from adaptlearn.mainstream.types import InfeasibleBudgetError as InfeasibleBudgetError
from adaptlearn.mainstream.types import NonMonotoneProfileError as NonMonotoneProfileError
from adaptlearn.mainstream.types import Schedule as Schedule
from adaptlearn.mainstream.types import StemOption as StemOption
from adaptlearn.mainstream.types import drop_dominated as drop_dominated
from adaptlearn.mainstream.types import make_monotone as make_monotone

__all__ = [
    "DEFAULT_FPS_OPTIONS",
    "AppConfig",
    "AppSpec",
    "CostModel",
    "InfeasibleBudgetError",
    "LayerProfile",
    "NonMonotoneProfileError",
    "Schedule",
    "StemCNN",
    "StemOption",
    "drop_dominated",
    "empirical_event_f1",
    "estimate_correlation",
    "event_f1",
    "event_miss_probability",
    "event_precision_recall",
    "fine_tune",
    "make_monotone",
    "max_sharing",
    "measure_stem_option",
    "no_sharing",
    "predict_scores",
    "profile_layers",
    "sampled_frames",
    "schedule",
    "simulate_event_miss",
    "train_classifier",
]
