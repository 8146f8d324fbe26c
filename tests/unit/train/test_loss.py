import math

import torch

from simpo_live.train.loss import LossOptions, simpo_loss


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


# The SimPO repo's options, on the docstring's pair (chosen -1.0, rejected -2.0, beta 2, ratio 0.5: z = 1).
SOFTPLUS_MINUS_1 = math.log(1 + math.exp(-1.0))  # 0.3132617


def one_pair(**options):
    return simpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), beta=2.0, gamma_beta_ratio=0.5,
                      options=LossOptions(**options)).losses.item()


def test_label_smoothing_worked_example():
    # 0.9 * softplus(-1) + 0.1 * softplus(1) = 0.9 * 0.3132617 + 0.1 * 1.3132617 = 0.4132617
    assert math.isclose(one_pair(label_smoothing=0.1), 0.4132617, abs_tol=1e-6)
    assert math.isclose(one_pair(label_smoothing=0.1), SOFTPLUS_MINUS_1 + 0.1, rel_tol=1e-6)


def test_hinge_worked_example():
    assert one_pair(loss_type="hinge") == 0.0  # relu(1 - 1)
    # chosen -1.0, rejected -1.75: margin 0.75, z = 2 * 0.25 = 0.5, relu(1 - 0.5) = 0.5
    out = simpo_loss(torch.tensor([-1.0]), torch.tensor([-1.75]), 2.0, 0.5, LossOptions(loss_type="hinge"))
    assert out.losses.item() == 0.5


def test_sft_weight_adds_the_chosen_mean_nll():
    # softplus(-1) + 0.5 * -(-1.0) = 0.3132617 + 0.5 = 0.8132617
    assert math.isclose(one_pair(sft_weight=0.5), 0.8132617, abs_tol=1e-6)


def test_default_options_are_the_paper_loss_bitwise():
    chosen, rejected = torch.randn(8), torch.randn(8)
    plain = simpo_loss(chosen, rejected, 2.0, 0.5).losses
    assert torch.equal(simpo_loss(chosen, rejected, 2.0, 0.5, LossOptions()).losses, plain)
