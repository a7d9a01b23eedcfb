"""Unit tests of the decode-delta path of mmrope_hf/patching/rope_index.py (``_generation_positions``,
``_decoding_positions``; scripts/mutation.py rope_index; docs/mutation.md), fast enough for mutation testing.

The model-level tests (tests/test_generate.py, tests/test_known_bugs.py) check the same path end to end against
the full forward; here each branch is pinned down with worked examples: the positions of new tokens decoded from a
cache are their unpadded token index + the stored ``rope_deltas`` (repeated per row when ``generate`` expands the
batch for beams), and anything else is the stock method's answer, cut to the new tokens. The stock method and the
per-set expansion are stand-ins that record their calls, so a test also sees which branch ran."""

from __future__ import annotations

import contextlib
import re
from types import SimpleNamespace

import pytest
import torch

from mmrope_hf.patching.rope_index import _decoding_positions, _generation_positions, install_packed_relay
from mmrope_hf.patching.undo import UndoLog


class Recorder:
    """A stand-in for a stock method: returns ``result`` and keeps the arguments of every call."""

    def __init__(self, result):
        self.result, self.calls = result, []

    def __call__(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return self.result


def make_state(num_sets: int, deltas: torch.Tensor | None = None, scheme: str = "mrope-i") -> SimpleNamespace:
    """What the two functions read of a PatchState; ``expand_sets`` stands in as "K copies, set k + 1000 k"."""
    expanded = []

    def expand_sets(positions):
        expanded.append(positions)
        base = positions.expand(3, -1, -1)
        return torch.cat([base + 1000 * k for k in range(num_sets)])

    return SimpleNamespace(
        config=SimpleNamespace(scheme=scheme),
        schedule=SimpleNamespace(num_sets=num_sets),
        expand_sets=expand_sets,
        expanded=expanded,
        handles=SimpleNamespace(rope_owner=SimpleNamespace(rope_deltas=deltas)),
    )


def rows3(values) -> torch.Tensor:
    """(3, B, L) with every row equal to ``values`` (B, L)."""
    return torch.tensor(values)[None].expand(3, -1, -1)


# a left-padded batch of 2 with 6 mask columns: 4 past + 2 new tokens in row 1, 2 padding + 2 past + 2 new in row 0
MASK = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])
DELTAS = torch.tensor([[5], [-2]])
# unpadded index of the new tokens: row 0 [2, 3], row 1 [4, 5]; + deltas: [7, 8] and [2, 3]
FROM_DELTAS = [[7, 8], [2, 3]]
STOCK = torch.arange(3 * 2 * 6).view(3, 2, 6) * 10  # what the stand-in stock method returns: past + new columns


def decode(state, original, **kwargs):
    return _decoding_positions(original, state, **kwargs)


def test_decoding_from_a_cache_adds_the_deltas_to_the_unpadded_index_of_the_new_tokens():
    stock = Recorder(STOCK)
    got = decode(make_state(1, DELTAS), stock, input_ids=torch.zeros(2, 2), attention_mask=MASK, past_key_values=1)
    assert torch.equal(got, rows3(FROM_DELTAS)) and not stock.calls


def test_decoding_from_inputs_embeds_counts_the_new_tokens_from_their_sequence_dimension():
    stock = Recorder(STOCK)
    embeds = torch.zeros(2, 2, 7)  # hidden size 7: neither the batch nor the new-token count
    got = decode(make_state(1, DELTAS), stock, inputs_embeds=embeds, attention_mask=MASK, past_key_values=1)
    assert torch.equal(got, rows3(FROM_DELTAS)) and not stock.calls


def test_decoding_one_token_of_each_of_three_new_tokens():
    stock = Recorder(STOCK)
    ids = torch.zeros(2, 3)
    got = decode(make_state(1, DELTAS), stock, input_ids=ids, attention_mask=MASK, past_key_values=1)
    assert torch.equal(got, rows3([[6, 7, 8], [1, 2, 3]]))


def test_beam_expanded_rows_repeat_each_prompts_deltas_in_place():
    """``generate`` expands a batch of 2 for 2 beams as rows (0, 0, 1, 1): each prompt's deltas per row, not tiled."""
    mask = torch.ones(4, 5, dtype=torch.long)
    got = decode(
        make_state(1, DELTAS), Recorder(None), input_ids=torch.zeros(4, 1), attention_mask=mask, past_key_values=1
    )
    assert torch.equal(got, rows3([[9], [9], [2], [2]]))


@pytest.mark.parametrize(
    "case",
    [
        dict(past_key_values=None, attention_mask=MASK),  # no cache: a prompt
        dict(past_key_values=1, attention_mask=MASK[:, -2:]),  # a mask of the new tokens only: nothing before them
        dict(past_key_values=1, attention_mask=MASK[:, None, None, :]),  # a 4-D mask
        dict(past_key_values=1, attention_mask={"full_attention": MASK}),  # per-attention-type masks
        dict(past_key_values=1, attention_mask=None),
    ],
    ids=["no cache", "mask of the new tokens", "4-D mask", "mask dict", "no mask"],
)
def test_anything_else_is_the_stock_answer_cut_to_the_new_tokens(case):
    stock = Recorder(STOCK)
    got = decode(make_state(1, DELTAS), stock, input_ids=torch.zeros(2, 2), **case)
    assert torch.equal(got, STOCK[..., -2:])
    ((args, kwargs),) = stock.calls  # called once, with the caller's arguments
    assert args == () and kwargs.keys() == {"input_ids", *case} and kwargs["attention_mask"] is case["attention_mask"]


def test_without_stored_deltas_the_stock_method_decides():
    stock = Recorder(STOCK)
    got = decode(make_state(1, None), stock, input_ids=torch.zeros(2, 2), attention_mask=MASK, past_key_values=1)
    assert torch.equal(got, STOCK[..., -2:]) and len(stock.calls) == 1


def test_a_stock_answer_of_the_new_tokens_only_is_kept_whole():
    stock = Recorder(STOCK[..., :2])
    got = decode(make_state(1, None), stock, input_ids=torch.zeros(2, 2), attention_mask=MASK[:, -2:])
    assert torch.equal(got, STOCK[..., :2])


def test_no_stock_answer_stays_none():
    assert decode(make_state(2, None), Recorder(None), input_ids=torch.zeros(2, 2)) is None


def test_several_position_sets_expand_the_delta_positions():
    state = make_state(2, DELTAS)
    got = decode(state, Recorder(None), input_ids=torch.zeros(2, 2), attention_mask=MASK, past_key_values=1)
    want = rows3(FROM_DELTAS)
    assert torch.equal(got, torch.cat([want, want + 1000])) and len(state.expanded) == 1


def test_several_position_sets_expand_a_three_row_stock_answer():
    state = make_state(2, None)
    got = decode(state, Recorder(STOCK), input_ids=torch.zeros(2, 2))
    assert torch.equal(got, torch.cat([STOCK[..., -2:], STOCK[..., -2:] + 1000]))


def test_a_stock_answer_that_holds_every_set_is_not_expanded_again():
    """Prefill: the patched ``get_rope_index`` already returned 3K rows."""
    state = make_state(2, None)
    every_set = torch.cat([STOCK, STOCK + 1])
    got = decode(state, Recorder(every_set), input_ids=torch.zeros(2, 2))
    assert torch.equal(got, every_set[..., -2:]) and not state.expanded


def test_one_position_set_is_never_expanded():
    state = make_state(1, DELTAS)
    decode(state, Recorder(STOCK), input_ids=torch.zeros(2, 2))
    decode(state, Recorder(None), input_ids=torch.zeros(2, 2), attention_mask=MASK, past_key_values=1)
    assert not state.expanded


# --- _generation_positions -------------------------------------------------------------------------------------


def generation(state, result, inputs, kwargs):
    stock = Recorder(result)
    return _generation_positions(stock, state, inputs, kwargs), stock


def test_generation_passes_the_inputs_to_the_stock_method():
    inputs, kwargs = torch.zeros(2, 3), {"attention_mask": torch.ones(2, 3)}
    got, stock = generation(make_state(1), STOCK, inputs, kwargs)
    assert got is STOCK and stock.calls == [((inputs, kwargs), {})]


@pytest.mark.parametrize("num_sets", [2, 3])
def test_generation_expands_text_positions_of_several_sets(num_sets):
    """Continuing from a cache, stock gives one text row (1, B, L): every set gets its own copy."""
    text = torch.arange(6).view(1, 2, 3)
    state = make_state(num_sets)
    got, _ = generation(state, text, torch.zeros(2, 3), {})
    base = text.expand(3, -1, -1)
    want = torch.cat([base + 1000 * k for k in range(num_sets)])
    assert torch.equal(got, want) and len(state.expanded) == 1


@pytest.mark.parametrize(("num_sets", "rows"), [(1, 1), (2, 4), (2, 6), (2, 3)])
def test_generation_keeps_positions_that_need_no_expansion(num_sets, rows):
    positions = torch.arange(rows * 6).view(rows, 2, 3)
    state = make_state(num_sets)
    got, _ = generation(state, positions, torch.zeros(2, 3), {})
    assert got is positions and not state.expanded


def test_generation_with_visual_inputs_needs_the_token_types():
    state = make_state(1, scheme="circle")
    kwargs = {"image_grid_thw": torch.tensor([[1, 4, 4]])}
    with pytest.raises(ValueError, match=r"without mm_token_type_ids, so the circle positions") as raised:
        generation(state, STOCK, torch.zeros(1, 3), kwargs)
    assert "image_grid_thw/video_grid_thw" in str(raised.value)
    kwargs["mm_token_type_ids"] = torch.zeros(1, 3)
    assert generation(state, STOCK, torch.zeros(1, 3), kwargs)[0] is STOCK


# --- the packed relay of K > 1 position sets (install_packed_relay) ------------------------------------------------


class _Rotary(torch.nn.Module):
    def forward(self, x, position_ids=None, *rest):
        return x, position_ids, rest


class _TextModel(torch.nn.Module):
    """Calls its rotary as the Qwen-VL text models do (``rotary(x, position_ids)``), or with other positions."""

    def __init__(self, call):
        super().__init__()
        self.rotary, self.call = _Rotary(), call

    def forward(self, x, position_ids=None):
        return self.call(self.rotary, x, position_ids)


@contextlib.contextmanager
def _relay(call):
    """A stand-in text model with the relay of 2 position sets installed, removed on exit."""
    model, undo = _TextModel(call), UndoLog()
    install_packed_relay(model, model.rotary, 2, undo)
    try:
        yield model
    finally:
        undo.undo()


def _relayed(call, positions):
    with _relay(call) as model:
        return model(torch.ones(1), position_ids=positions)


POSITIONS = torch.arange(7 * 5).reshape(7, 1, 5)  # text row + 2 sets of (t, h, w)


def test_relay_hands_the_rotary_every_set_as_an_argument_or_a_keyword():
    x, sets, rest = _relayed(lambda rotary, x, p: rotary(x, p, "extra"), POSITIONS)
    assert torch.equal(x, torch.ones(1)) and torch.equal(sets, POSITIONS[1:]) and rest == ("extra",)
    x, sets, rest = _relayed(lambda rotary, x, p: rotary(x, position_ids=p), POSITIONS)
    assert torch.equal(x, torch.ones(1)) and torch.equal(sets, POSITIONS[1:]) and rest == ()


def test_relay_hands_every_rotary_call_of_the_forward_the_sets():
    """A text model that calls its rotary more than once (per layer type, say) gets the sets each time."""
    calls = _relayed(lambda rotary, x, p: (rotary(x, p), rotary(x, position_ids=p)), POSITIONS)
    for _, sets, _ in calls:
        assert torch.equal(sets, POSITIONS[1:])


def test_relay_refuses_a_rotary_call_without_this_forwards_positions():
    """Left alone, the rotary would rotate every layer with set 0: an error instead."""
    message = (
        "mmrope-hf: _Rotary was called without position_ids of shape (..., 1, 5) in a forward given 2 position "
        "sets, so it cannot be handed the sets; every layer would read set 0 (is this a transformers version whose "
        "text model calls its rotary differently?)"
    )
    with pytest.raises(RuntimeError, match=f"^{re.escape(message)}$"):
        _relayed(lambda rotary, x, p: rotary(x, p[:, :, :3]), POSITIONS)
    with pytest.raises(RuntimeError, match=f"^{re.escape(message)}$"):
        _relayed(lambda rotary, x, p: rotary(x), POSITIONS)


def test_relay_forgets_the_sets_after_the_forward_also_when_it_fails():
    """Sets left over from a forward that never reached the rotary (it raised, or did not rotate) must not reach a
    later call of the rotary outside the text model."""

    def fail(rotary, x, p):
        raise KeyError("before the rotary")

    for call in (fail, lambda rotary, x, p: None):
        with _relay(call) as model:
            with contextlib.suppress(KeyError):
                model(torch.ones(1), position_ids=POSITIONS)
            other = torch.zeros(3, 1, 5)
            assert model.rotary(torch.ones(1), other)[1] is other
