"""Tests that kill the mutants of mmrope_hf/frequencies/apply.py that survived the module's tests
(scripts/mutation.py apply; docs/mutation.md). Expectations: stock transformers (GPT-J's rotate_every_two, Llama's
apply_rotary_pos_emb) and the per-vector rotation of tests/reference/rope_reference.py."""

from __future__ import annotations

import types

import pytest
import torch
from reference import rope_reference as ref
from transformers.models.gptj.modeling_gptj import rotate_every_two
from transformers.models.llama.modeling_llama import apply_rotary_pos_emb as llama_apply
from transformers.models.llama.modeling_llama import rotate_half

from mmrope_hf.frequencies.apply import AxisTables, apply_per_head_axis, install_dispatcher, rotate_adjacent


def test_rotate_adjacent_is_gptj_rotate_every_two():
    x = torch.randn(2, 3, 5, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rotate_adjacent(x), rotate_every_two(x))


def _tables(seed, num_axes=3, batch=1, length=2, dim=4):
    g = torch.Generator().manual_seed(seed)
    angles = torch.randn(num_axes, batch, length, dim // 2, generator=g, dtype=torch.float64)
    angles = torch.cat((angles, angles), dim=-1)
    return angles.cos(), angles.sin()


def test_no_rotation_head_before_rotated_heads():
    """A NoPE KV head first (head_axes (-1, 0)): it passes through, the head after it still rotates on axis 0."""
    cos, sin = _tables(1)
    q = torch.randn(1, 2, 2, 4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    k = torch.randn(1, 2, 2, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    head_axes = (-1, 0)
    q_out, k_out = apply_per_head_axis(q, k, AxisTables(cos, head_axes), AxisTables(sin, head_axes))
    for x, out in ((q, q_out), (k, k_out)):
        assert out.shape == x.shape
        torch.testing.assert_close(out[:, 0], x[:, 0], rtol=0, atol=0)
        for pos in range(2):
            want = ref.rotate(x[0, 1, pos].tolist(), cos[0, 0, pos].tolist(), sin[0, 0, pos].tolist())
            torch.testing.assert_close(out[0, 1, pos], torch.tensor(want, dtype=torch.float64))


@pytest.mark.parametrize(
    ("query_heads", "kv_heads", "plan_heads"), [(3, 2, 2), (4, 2, 3)], ids=["query-not-grouped", "kv-mismatch"]
)
def test_head_count_mismatch_is_refused(query_heads, kv_heads, plan_heads):
    cos, sin = _tables(4, length=5)  # 5 tokens: no head count equals the length
    head_axes = tuple(range(plan_heads))
    q, k = torch.zeros(1, query_heads, 5, 4), torch.zeros(1, kv_heads, 5, 4)
    message = f"the multi-head plan has {plan_heads} KV heads, attention has {kv_heads} KV / {query_heads} query heads"
    with pytest.raises(ValueError, match=message):
        apply_per_head_axis(q, k, AxisTables(cos.float(), head_axes), AxisTables(sin.float(), head_axes))


def test_dispatcher_passes_extra_arguments_to_the_original():
    module = types.ModuleType("fake_modeling")
    module.apply_rotary_pos_emb = llama_apply
    undo = install_dispatcher(module, "apply_rotary_pos_emb")
    try:
        g = torch.Generator().manual_seed(5)
        # q, k laid out (B, L, H, D): unsqueeze_dim=2 puts cos/sin (B, L, D) at (B, L, 1, D)
        q, k = torch.randn(1, 3, 2, 4, generator=g), torch.randn(1, 3, 2, 4, generator=g)
        cos, sin = torch.randn(1, 3, 4, generator=g), torch.randn(1, 3, 4, generator=g)
        want = (
            q * cos[:, :, None] + rotate_half(q) * sin[:, :, None],
            k * cos[:, :, None] + rotate_half(k) * sin[:, :, None],
        )
        calls = (
            module.apply_rotary_pos_emb(q, k, cos, sin, 2),
            module.apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2),
        )
        for got in calls:
            torch.testing.assert_close(got[0], want[0], rtol=0, atol=0)
            torch.testing.assert_close(got[1], want[1], rtol=0, atol=0)
    finally:
        undo()
    assert module.apply_rotary_pos_emb is llama_apply


# --- the dispatcher beside other code that swaps the same function (profilers, monkeypatch, test helpers) ---------
# Models are released by garbage collection (weakref.finalize), so the last undo can run at any allocation, also
# while another piece of code has its own function in the module for a while and will put back what it saw.


def _axis_tables(length: int = 3):
    cos, sin = _tables(4, length=length)
    return AxisTables(cos.float(), (0, 1)), AxisTables(sin.float(), (0, 1))


def assert_routes_axis_tables(module) -> None:
    """The module's function rotates KV head j (and its query head) with axis j's table: what the stock function
    gives on that head alone with that table (head_axes (0, 1))."""
    g = torch.Generator().manual_seed(6)
    q, k = torch.randn(1, 2, 3, 4, generator=g), torch.randn(1, 2, 3, 4, generator=g)
    cos, sin = _axis_tables()
    got = module.apply_rotary_pos_emb(q, k, cos, sin)
    for head, axis in enumerate(cos.head_axes):
        one = slice(head, head + 1)
        want = llama_apply(q[:, one], k[:, one], cos.tables[axis], sin.tables[axis])
        for out, expected in zip(got, want, strict=True):
            torch.testing.assert_close(out[:, one], expected, rtol=0, atol=1e-6)


def _fake_module():
    module = types.ModuleType("fake_modeling")
    module.apply_rotary_pos_emb = llama_apply
    return module


def test_the_last_undo_leaves_a_function_someone_else_put_there():
    """An oracle or profiler that swapped in its function keeps it when the last model goes meanwhile."""
    module = _fake_module()
    undo = install_dispatcher(module, "apply_rotary_pos_emb")

    def theirs(q, k, cos, sin, *args, **kwargs):
        return q, k

    module.apply_rotary_pos_emb = theirs
    undo()
    assert module.apply_rotary_pos_emb is theirs


def test_a_stale_dispatcher_put_back_is_unwrapped_by_the_next_install():
    """monkeypatch's teardown puts back the dispatcher it saw after the last model went: the next model's dispatcher
    wraps the stock function, not the stale one, and its undo gives the stock function back."""
    module = _fake_module()
    undo = install_dispatcher(module, "apply_rotary_pos_emb")
    stale = module.apply_rotary_pos_emb
    undo()
    module.apply_rotary_pos_emb = stale  # put back by someone who saved it
    undo = install_dispatcher(module, "apply_rotary_pos_emb")
    assert module.apply_rotary_pos_emb.__wrapped__ is llama_apply
    assert_routes_axis_tables(module)
    undo()
    assert module.apply_rotary_pos_emb is llama_apply


def test_a_model_patched_after_someone_restored_the_stock_function_gets_the_dispatcher_back():
    """A live model's dispatcher replaced by the stock function (a helper restoring what it saved before the model
    was patched): the next install puts the dispatcher back, so MHRoPE tables never reach the stock function."""
    module = _fake_module()
    first = install_dispatcher(module, "apply_rotary_pos_emb")
    module.apply_rotary_pos_emb = llama_apply
    second = install_dispatcher(module, "apply_rotary_pos_emb")
    assert_routes_axis_tables(module)
    first()
    second()
    assert module.apply_rotary_pos_emb is llama_apply
