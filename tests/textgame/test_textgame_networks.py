"""Text CNN: the one-matmul forward equals the textbook three-``Conv1d`` forward (values, grads)."""

import pytest
import torch

from adaptlearn.textgame import EliminationNetwork, QNetwork, TextCNN


@pytest.mark.parametrize("heights", [(1, 2, 3), (2, 4), (1,)])
def test_fast_forward_equals_conv_reference_values_and_gradients(heights):
    torch.manual_seed(0)
    net = TextCNN(50, embed_dim=6, n_filters=5, heights=heights).double()
    tokens = torch.randint(0, 50, (7, 12))
    tokens[:, 9:] = 0  # padding at the end, as in the env's slots
    fast, ref = net(tokens), net.forward_reference(tokens)
    torch.testing.assert_close(fast, ref)
    weights = torch.randn_like(fast)
    grads_fast = torch.autograd.grad((fast * weights).sum(), list(net.parameters()))
    grads_ref = torch.autograd.grad((net.forward_reference(tokens) * weights).sum(),
                                    list(net.parameters()))
    for g_fast, g_ref in zip(grads_fast, grads_ref, strict=True):
        torch.testing.assert_close(g_fast, g_ref)


def test_heads_and_bandit_features_have_the_documented_shapes():
    q = QNetwork(30, 11, embed_dim=4, n_filters=3)
    aen = EliminationNetwork(30, 11, embed_dim=4, n_filters=3)
    tokens = torch.randint(0, 30, (5, 10))
    assert q(tokens).shape == (5, 11) and aen(tokens).shape == (5, 11)
    x = aen.features(tokens)
    assert x.shape == (5, aen.feature_dim) == (5, 10)
    torch.testing.assert_close(x[:, :-1].norm(dim=1), torch.ones(5))  # unit norm + bias 1
    assert torch.equal(x[:, -1], torch.ones(5))


def test_bad_heights_name_the_argument():
    with pytest.raises(ValueError, match="heights"):
        TextCNN(10, heights=(0, 2))
