import math

import torch

from simpo_live.train.loss import simpo_loss


def test_worked_example_from_docstring():
    out = simpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), beta=2.0, gamma_beta_ratio=0.5)
    assert math.isclose(out.losses.item(), math.log(1 + math.exp(-1.0)), rel_tol=1e-6)
    assert out.margins.item() == 1.0
    assert out.reward_correct.item() and out.margin_correct.item()


def test_both_accuracy_definitions_differ_when_margin_is_small():
    out = simpo_loss(torch.tensor([-1.0, -3.0]), torch.tensor([-1.2, -2.0]), beta=2.0, gamma_beta_ratio=0.5)
    assert out.reward_correct.tolist() == [True, False]
    assert out.margin_correct.tolist() == [False, False]


def test_loss_matches_minus_logsigmoid_form():
    chosen, rejected = torch.randn(8), torch.randn(8)
    beta, ratio = 2.5, 0.3
    out = simpo_loss(chosen, rejected, beta, ratio)
    gamma = ratio * beta
    expected = -torch.nn.functional.logsigmoid(beta * chosen - beta * rejected - gamma)
    torch.testing.assert_close(out.losses, expected)
