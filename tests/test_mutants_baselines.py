"""Tests that kill the mutants of mmrope_hf/positions/baselines.py that survived the module's tests
(scripts/mutation.py baselines; docs/mutation.md): HoPE's training-time strides without the patch's generator are
decided by the ``seed`` option alone (``torch.Generator().manual_seed(seed)``, one draw per block among the
choices), positions against tests/reference/baselines_reference."""

from __future__ import annotations

import pytest
import torch
from reference import baselines_reference as bref

from mmrope_hf.positions.baselines import DEFAULT_STRIDE_CHOICES, hope
from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import VIDEO, VisualBlock

LAYOUT = [("text", 2), ("video", 3, 2, 2), ("text", 1), ("video", 2, 2, 3), ("text", 1), ("video", 2, 1, 2)]
SEGMENTS = [
    2,
    VisualBlock(VIDEO, (3, 2, 2), 1.0),
    1,
    VisualBlock(VIDEO, (2, 2, 3), 1.0),
    1,
    VisualBlock(VIDEO, (2, 1, 2), 1.0),
]


@pytest.mark.parametrize("seed", [0, 7, 123])
def test_hope_draws_from_the_seed_alone(seed):
    torch.manual_seed(999)  # the global generator must not matter
    generator = torch.Generator().manual_seed(seed)
    choices = DEFAULT_STRIDE_CHOICES
    strides = [choices[int(torch.randint(len(choices), (1,), generator=generator))] for _ in range(3)]
    got = hope(SEGMENTS, PositionOptions(training=True, design={"seed": seed}))
    ids, nxt = bref.positions(LAYOUT, "hope", strides)
    want = torch.tensor([[float(v) for v in p] for p in ids]).T
    torch.testing.assert_close(got.positions.double(), want.double(), atol=1e-5, rtol=0)
    assert float(got.next_position) == pytest.approx(float(nxt))
