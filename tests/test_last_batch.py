"""The last step of an epoch on several processes trains its real pairs once, weighted as on one process."""

import pytest
import torch

from w2s_align.last_batch import pair_weights


@pytest.mark.parametrize(("processes", "pairs"), [(2, 4), (2, 8), (3, 5), (8, 1)])
def test_the_processes_average_is_the_one_process_mean_of_the_real_pairs(processes, pairs):
    for real in range(1, processes * pairs):  # a full step carries no weights
        losses = torch.rand(processes * pairs, dtype=torch.float64)  # the step's pairs in accelerate's order
        sums = [
            (losses[p * pairs : (p + 1) * pairs] * pair_weights(real, p, processes, pairs).double()).sum()
            for p in range(processes)
        ]
        averaged = sum(sums) / processes  # DDP and DeepSpeed average the processes' gradients
        assert averaged.item() == pytest.approx(losses[:real].mean().item())


def test_the_filling_weighs_nothing():
    weights = torch.cat([pair_weights(5, p, 2, 4) for p in range(2)])
    assert weights.tolist()[5:] == [0.0, 0.0, 0.0]
