"""Long-memory recurrent layers (MRNN, MRNN-F, MLSTM, MLSTM-F) and the fractional filter.

References:
    J. Zhao, F. Huang, J. Lv, Y. Duan, Z. Qin, G. Li, G. Tian. "Do RNN and LSTM have Long
    Memory?" ICML 2020, arXiv:2006.03860.
"""

from adaptlearn.nn.filter import filter_mass as filter_mass
from adaptlearn.nn.filter import fractional_weights as fractional_weights
from adaptlearn.nn.filter import fractional_weights_gamma as fractional_weights_gamma
from adaptlearn.nn.heads import RECURRENT_KINDS as RECURRENT_KINDS
from adaptlearn.nn.heads import RecurrentRegressor as RecurrentRegressor
from adaptlearn.nn.heads import make_recurrent as make_recurrent
from adaptlearn.nn.recurrent import MLSTM as MLSTM
from adaptlearn.nn.recurrent import MLSTMF as MLSTMF
from adaptlearn.nn.recurrent import MRNN as MRNN
from adaptlearn.nn.recurrent import MRNNF as MRNNF
from adaptlearn.nn.recurrent import MLSTMFState as MLSTMFState
from adaptlearn.nn.recurrent import MLSTMState as MLSTMState
from adaptlearn.nn.recurrent import MRNNFState as MRNNFState
from adaptlearn.nn.recurrent import MRNNState as MRNNState

__all__ = [
    "MLSTM",
    "MLSTMF",
    "MRNN",
    "MRNNF",
    "RECURRENT_KINDS",
    "MLSTMFState",
    "MLSTMState",
    "MRNNFState",
    "MRNNState",
    "RecurrentRegressor",
    "filter_mass",
    "fractional_weights",
    "fractional_weights_gamma",
    "make_recurrent",
]
