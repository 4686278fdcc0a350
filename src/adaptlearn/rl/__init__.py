"""Accelerated deep RL: batched samplers and large-batch A2C / PPO / DQN.

Stooke & Abbeel, "Accelerated Methods for Deep Reinforcement Learning" (arXiv 1803.02811), the
design that became rlpyt: many simulators on CPU workers, one batched forward pass per step,
``[T, B]`` batches, and larger batches with adapted learning rates. See ``README.md`` here.

Example::

    from adaptlearn.rl import (A2C, ActorCritic, CategoricalPgAgent, EnvFactory,
                               ParallelSampler, train)
    env_fn = EnvFactory("CartPole-v1")
    with ParallelSampler(env_fn, n_envs=16, horizon=5, seed=0) as sampler:
        model = ActorCritic((4,), 2, arch="mlp")  # separate actor and critic MLPs
        algo = A2C(CategoricalPgAgent(model, seed=0), lr=7e-4, device="cpu")
        curve = train(sampler, algo, total_steps=50_000)
"""

from adaptlearn.rl.agents import CategoricalPgAgent, EnvNoise, EpsilonGreedyAgent
from adaptlearn.rl.algos import A2C, DQN, PPO, bootstrap_values, gae_advantages, make_optimizer
from adaptlearn.rl.envs import EnvFactory, IdentityEnv, MinAtarEnv, make_env, registered_ids
from adaptlearn.rl.models import ActorCritic, QNetwork, make_torso, resolve_device
from adaptlearn.rl.replay import PrioritizedReplay, SumTree, UniformReplay
from adaptlearn.rl.runner import CpuClock, cpu_seconds, process_cpu_seconds, train
from adaptlearn.rl.samplers import (
    SAMPLERS,
    AlternatingSampler,
    ParallelSampler,
    RaySampler,
    Sampler,
    SamplerTimeoutError,
    Samples,
    SerialSampler,
    WorkerDiedError,
    make_sampler,
)
from adaptlearn.rl.scaling import (
    LARGE_BATCH_BASES,
    dqn_updates_per_batch,
    large_batch_preset,
    scale_lr,
)

__all__ = [
    "A2C", "DQN", "LARGE_BATCH_BASES", "PPO", "SAMPLERS", "ActorCritic", "AlternatingSampler",
    "CategoricalPgAgent", "CpuClock", "EnvFactory", "EnvNoise", "EpsilonGreedyAgent",
    "IdentityEnv", "MinAtarEnv",
    "ParallelSampler", "PrioritizedReplay", "QNetwork", "RaySampler", "Sampler",
    "SamplerTimeoutError", "Samples", "SerialSampler", "SumTree", "UniformReplay",
    "WorkerDiedError", "bootstrap_values", "cpu_seconds", "dqn_updates_per_batch",
    "gae_advantages", "large_batch_preset", "make_env", "make_optimizer", "make_sampler",
    "make_torso", "process_cpu_seconds", "registered_ids", "resolve_device", "scale_lr", "train",
]
