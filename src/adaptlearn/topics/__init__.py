"""Single-topic models learned online: SpectralLeader, stepwise online EM, batch baselines.

References:
    Yu, Kveton, Wen, Bui, Mengshoel. "SpectralLeader: Online Spectral Learning for Single Topic
    Models." ECML PKDD 2018, arXiv:1709.07172.
"""

from adaptlearn.topics.em import BatchEM as BatchEM
from adaptlearn.topics.em import OnlineEM as OnlineEM
from adaptlearn.topics.model import SingleTopicCorpus as SingleTopicCorpus
from adaptlearn.topics.model import as_count_matrix as as_count_matrix
from adaptlearn.topics.model import generate_corpus as generate_corpus
from adaptlearn.topics.model import log_likelihood as log_likelihood
from adaptlearn.topics.model import match_topics as match_topics
from adaptlearn.topics.online import online_log_likelihoods as online_log_likelihoods
from adaptlearn.topics.spectral import SpectralLeader as SpectralLeader
from adaptlearn.topics.spectral import WhiteningError as WhiteningError
from adaptlearn.topics.spectral import tensor_power_method as tensor_power_method
from adaptlearn.topics.spectral import whitened_third_moment as whitened_third_moment

__all__ = [
    "BatchEM",
    "OnlineEM",
    "SingleTopicCorpus",
    "SpectralLeader",
    "WhiteningError",
    "as_count_matrix",
    "generate_corpus",
    "log_likelihood",
    "match_topics",
    "online_log_likelihoods",
    "tensor_power_method",
    "whitened_third_moment",
]
