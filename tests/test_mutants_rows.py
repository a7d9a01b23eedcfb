"""Tests that kill the mutants of mmrope_hf/positions/rows.py that survived the module's tests
(scripts/mutation.py rows; docs/mutation.md): the per-row builder (build_positions) against
tests/reference/rope_reference on random batches (the generator and the check are in tests/test_mutants_mrope.py)."""

from __future__ import annotations

import pytest
import test_mutants_mrope as common


@pytest.mark.parametrize("seed", range(100, 124))
@pytest.mark.parametrize("advance", ["max", "spatial"])
@pytest.mark.parametrize("temporal_stride", [None, 0.75])
def test_rows_equals_the_reference(seed, advance, temporal_stride):
    common.check_against_reference(
        seed, ("mrope", "spatial-reset", "vanilla"), temporal_stride, advance, paths=("rows",)
    )
