"""Shared machinery: seeding, validation, configs, trials, run folders, checkpoints, reports.

Only the standard library, NumPy and torch are imported at module level; tqdm and matplotlib are
imported when used.
"""

from adaptlearn.core.config import ConfigError as ConfigError
from adaptlearn.core.config import apply_overrides as apply_overrides
from adaptlearn.core.io import atomic_write_bytes as atomic_write_bytes
from adaptlearn.core.io import atomic_write_csv as atomic_write_csv
from adaptlearn.core.io import atomic_write_json as atomic_write_json
from adaptlearn.core.io import atomic_write_text as atomic_write_text
from adaptlearn.core.io import capture_rng_state as capture_rng_state
from adaptlearn.core.io import load_checkpoint as load_checkpoint
from adaptlearn.core.io import restore_rng_state as restore_rng_state
from adaptlearn.core.io import save_checkpoint as save_checkpoint
from adaptlearn.core.plotting import new_figure as new_figure
from adaptlearn.core.plotting import plot_curves as plot_curves
from adaptlearn.core.progress import progress as progress
from adaptlearn.core.registry import Experiment as Experiment
from adaptlearn.core.registry import get_experiment as get_experiment
from adaptlearn.core.registry import list_experiments as list_experiments
from adaptlearn.core.registry import register as register
from adaptlearn.core.runner import RunContext as RunContext
from adaptlearn.core.runner import RunOptions as RunOptions
from adaptlearn.core.runner import run_experiment as run_experiment
from adaptlearn.core.seeding import Rngs as Rngs
from adaptlearn.core.seeding import pin_threads as pin_threads
from adaptlearn.core.seeding import seed_everything as seed_everything
from adaptlearn.core.seeding import spawn_seeds as spawn_seeds
from adaptlearn.core.trials import Trial as Trial
from adaptlearn.core.trials import TrialContext as TrialContext
from adaptlearn.core.trials import TrialResult as TrialResult
from adaptlearn.core.trials import make_trials as make_trials
from adaptlearn.core.trials import run_trials as run_trials
from adaptlearn.core.validation import check_choice as check_choice
from adaptlearn.core.validation import check_int as check_int
from adaptlearn.core.validation import check_positive_int as check_positive_int
from adaptlearn.core.validation import check_probability as check_probability
from adaptlearn.core.validation import check_range as check_range

__all__ = [
    "ConfigError",
    "Experiment",
    "Rngs",
    "RunContext",
    "RunOptions",
    "Trial",
    "TrialContext",
    "TrialResult",
    "apply_overrides",
    "atomic_write_bytes",
    "atomic_write_csv",
    "atomic_write_json",
    "atomic_write_text",
    "capture_rng_state",
    "check_choice",
    "check_int",
    "check_positive_int",
    "check_probability",
    "check_range",
    "get_experiment",
    "list_experiments",
    "load_checkpoint",
    "make_trials",
    "new_figure",
    "pin_threads",
    "plot_curves",
    "progress",
    "register",
    "restore_rng_state",
    "run_experiment",
    "run_trials",
    "save_checkpoint",
    "seed_everything",
    "spawn_seeds",
]
