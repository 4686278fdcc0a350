"""adaptlearn: components and reproducible experiments for nine adaptive-learning methods.

Subpackages (imported on demand, so ``import adaptlearn`` stays cheap):

- :mod:`adaptlearn.core` -- seeding, validation, run directories, trials, checkpoints, reports.
- :mod:`adaptlearn.optim` -- AdaMod.
- :mod:`adaptlearn.nn` -- long-memory recurrent layers (MRNN, MLSTM).
- :mod:`adaptlearn.data` -- offline data generators and loaders.
- :mod:`adaptlearn.selection` -- Selective-Backprop and AdaptSB.
- :mod:`adaptlearn.mainstream` -- stem-sharing scheduler for concurrent video apps.
- :mod:`adaptlearn.rl` -- samplers, vector envs and agents for accelerated deep RL.
- :mod:`adaptlearn.marl` -- hierarchical multi-agent RL on Trash Collection.
- :mod:`adaptlearn.textgame` -- text game and AE-DQN.
- :mod:`adaptlearn.tracking` -- trackers and learned model updaters.
- :mod:`adaptlearn.topics` -- SpectralLeader and online EM for single-topic models.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
