"""Text game with a large combinatorial action space, and AE-DQN (action elimination).

Importing the package registers ``gymnasium.make("adaptlearn/TextQuest-v0", quest=..., ...)``.

Zahavy et al., "Learn What Not to Learn: Action Elimination with Deep Reinforcement Learning",
NeurIPS 2018 (arXiv:1809.02121).
"""

import gymnasium as _gym

from adaptlearn.textgame.agent import MODES as MODES
from adaptlearn.textgame.agent import AEDQNAgent as AEDQNAgent
from adaptlearn.textgame.agent import AgentConfig as AgentConfig
from adaptlearn.textgame.agent import elimination_stats as elimination_stats
from adaptlearn.textgame.agent import evaluate as evaluate
from adaptlearn.textgame.agent import train_agent as train_agent
from adaptlearn.textgame.bandit import LinearContextualBandit as LinearContextualBandit
from adaptlearn.textgame.env import QUESTS as QUESTS
from adaptlearn.textgame.env import VERBS as VERBS
from adaptlearn.textgame.env import TextQuestEnv as TextQuestEnv
from adaptlearn.textgame.networks import EliminationNetwork as EliminationNetwork
from adaptlearn.textgame.networks import QNetwork as QNetwork
from adaptlearn.textgame.networks import TextCNN as TextCNN
from adaptlearn.textgame.replay import ObservationTable as ObservationTable
from adaptlearn.textgame.replay import ReplayBuffer as ReplayBuffer

ENV_ID = "adaptlearn/TextQuest-v0"
if ENV_ID not in _gym.registry:
    # The step limit is the env's own ``max_steps``; no TimeLimit wrapper on top.
    _gym.register(ENV_ID, entry_point="adaptlearn.textgame.env:TextQuestEnv")

__all__ = [
    "ENV_ID", "MODES", "QUESTS", "VERBS", "AEDQNAgent", "AgentConfig", "EliminationNetwork",
    "LinearContextualBandit", "ObservationTable", "QNetwork", "ReplayBuffer", "TextCNN",
    "TextQuestEnv", "elimination_stats", "evaluate", "train_agent",
]
