import pytest
import torch
import torch.nn.functional as F

from tirg.losses import LOSSES


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradients_match_finite_differences(name):
    torch.manual_seed(0)
    queries = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    targets = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(LOSSES[name], (queries, targets), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_matching_pairs_cost_less_than_shuffled_ones(name):
    torch.manual_seed(0)
    targets = 4 * F.normalize(torch.randn(8, 16), dim=1)
    queries = 4 * F.normalize(targets + 0.1 * torch.randn(8, 16), dim=1)
    matched = LOSSES[name](queries, targets)
    shuffled = LOSSES[name](queries, targets[torch.roll(torch.arange(8), 1)])
    assert matched < shuffled
