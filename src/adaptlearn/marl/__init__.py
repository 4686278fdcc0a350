"""Hierarchical deep multiagent RL (Tang et al., arXiv 1809.09332) on Multiagent Trash Collection.

* :mod:`~adaptlearn.marl.trash_collection_v0`: the environment (PettingZoo ``ParallelEnv``).
* :class:`SubgoalSpace`: subgoals, target cells, masks, the internal critic, an oracle controller.
* :class:`AgentQNetwork`, :class:`CommNetQNetwork` (hCom), :class:`QMixer` (hQmix, flat QMIX).
* :class:`QLearner`: double-DQN with semi-MDP targets, per agent or through a mixer.
* :class:`ReplayBuffer`, :class:`EpisodeLog`, :func:`high_level_transitions`: ACER.
* :func:`train`, :class:`TrainConfig`: flat IQL/QMIX and Ind-hDQN/hCom/hQmix training loops.
"""

from adaptlearn.marl import trash_collection_v0 as trash_collection_v0
from adaptlearn.marl.learners import QLearner as QLearner
from adaptlearn.marl.learners import epsilon_greedy as epsilon_greedy
from adaptlearn.marl.networks import AgentQNetwork as AgentQNetwork
from adaptlearn.marl.networks import CommNetQNetwork as CommNetQNetwork
from adaptlearn.marl.networks import QMixer as QMixer
from adaptlearn.marl.replay import EpisodeLog as EpisodeLog
from adaptlearn.marl.replay import ReplayBuffer as ReplayBuffer
from adaptlearn.marl.replay import discounted_return as discounted_return
from adaptlearn.marl.replay import high_level_transitions as high_level_transitions
from adaptlearn.marl.runner import METHOD_ALIASES as METHOD_ALIASES
from adaptlearn.marl.runner import TrainConfig as TrainConfig
from adaptlearn.marl.runner import canonical_method as canonical_method
from adaptlearn.marl.runner import train as train
from adaptlearn.marl.subgoals import SubgoalSpace as SubgoalSpace
from adaptlearn.marl.trash_collection_v0 import LAYOUTS as LAYOUTS
from adaptlearn.marl.trash_collection_v0 import Layout as Layout
from adaptlearn.marl.trash_collection_v0 import TrashCollectionEnv as TrashCollectionEnv

__all__ = [
    "LAYOUTS", "METHOD_ALIASES", "AgentQNetwork", "CommNetQNetwork", "EpisodeLog", "Layout",
    "QLearner", "QMixer", "ReplayBuffer", "SubgoalSpace", "TrainConfig", "TrashCollectionEnv",
    "canonical_method", "discounted_return", "epsilon_greedy", "high_level_transitions",
    "train", "trash_collection_v0",
]
