"""Host values reach the device in the dtype asked for, from a list or a host tensor."""

from __future__ import annotations

import torch

from services.common.device import to_device

CPU = torch.device("cpu")


def test_a_list_becomes_a_tensor_of_the_dtype() -> None:
    tensor = to_device([3, 1, 2], CPU)
    assert tensor.dtype == torch.long and tensor.tolist() == [3, 1, 2] and tensor.device == CPU


def test_a_host_tensor_is_converted() -> None:
    mask = to_device(torch.tensor([[1, 0], [0, 1]]), CPU, torch.bool)
    assert mask.dtype == torch.bool and mask.tolist() == [[True, False], [False, True]]
    rows = to_device(torch.ones(2, 3, dtype=torch.float32), CPU, torch.bfloat16)
    assert rows.dtype == torch.bfloat16 and rows.shape == (2, 3)
