"""Model tests run tiny matrices: one intra-op thread avoids torch's thread hand-off cost, which on a
shared 2-core machine makes each small matmul milliseconds instead of microseconds."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="package", autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
