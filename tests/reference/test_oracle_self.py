"""Self-tests of the independent RoPE reference (tests/reference/rope_reference.py): checks of the oracle, not of
mmrope-hf (the full tier runs them and counts them apart from the product tests; the fast tier leaves them out).

Every expectation below is transcribed from the worked examples in section 6 of
/work/shared/reference/multimodal_ropes.md (plus a few properties from sections 1-2).
Needs neither torch nor mmrope_hf.
"""

import math
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from reference import rope_reference as R  # noqa: E402

# (a): x0 x1 <vs> | 4x4 image (grid_thw [1,8,8], merge 2) | <ve> x4  -> 21 tokens
EX_A = [("text", 3), ("image", 1, 4, 4), ("text", 2)]
# (b): x0 <vs> | video of 3 groups of 2x2 (grid_thw [3,4,4]) | <ve> x3  -> 16 tokens
EX_B = [("text", 2), ("video", 3, 2, 2), ("text", 2)]


def txt(*ps):
    return [(p, p, p) for p in ps]


def grid(T, H, W, f):
    """Row-major (g, r, c) expansion of f(g, r, c) -> (t, h, w)."""
    return [f(g, r, c) for g in range(T) for r in range(H) for c in range(W)]


def check(layout, design, expected_ids, expected_delta, **kw):
    ids, nxt = R.positions(layout, design, **kw)
    assert len(ids) == R.num_tokens(layout)
    assert ids == expected_ids
    assert R.rope_delta(layout, design, **kw) == expected_delta
    assert nxt == len(ids) + expected_delta


# ---------------------------------------------------------------- example (a)
@pytest.mark.parametrize("stride", [0.5, 1.0, 1.5, 2.0])
@pytest.mark.parametrize("advance", ["max", "spatial"])
def test_example_a(stride, advance):
    kw = dict(stride=stride, advance=advance)
    check(EX_A, "vanilla", txt(*range(21)), 0, **kw)
    check(EX_A, "mrope", txt(0, 1, 2) + grid(1, 4, 4, lambda g, r, c: (3, 3 + r, 3 + c)) + txt(7, 8), -12, **kw)
    check(EX_A, "spatial-reset", txt(0, 1, 2) + grid(1, 4, 4, lambda g, r, c: (3, r, c)) + txt(7, 8), -12, **kw)


def test_example_a_vanilla_formula():
    ids, _ = R.positions(EX_A, "vanilla")
    img = ids[3:19]
    assert img == grid(1, 4, 4, lambda g, r, c: (3 + 4 * r + c,) * 3)
    assert ids[19:] == txt(19, 20)


# ---------------------------------------------------------------- example (b)
def test_example_b_vanilla():
    check(EX_B, "vanilla", txt(0, 1) + grid(3, 2, 2, lambda g, r, c: (2 + 4 * g + 2 * r + c,) * 3) + txt(14, 15), 0)


def test_example_b_mrope_s1_qwen2vl():
    check(EX_B, "mrope", txt(0, 1) + grid(3, 2, 2, lambda g, r, c: (2 + g, 2 + r, 2 + c)) + txt(5, 6), -9, stride=1.0)


def test_example_b_mrope_s2_repo_default():
    check(
        EX_B, "mrope", txt(0, 1) + grid(3, 2, 2, lambda g, r, c: (2 + 2 * g, 2 + r, 2 + c)) + txt(7, 8), -7, stride=2.0
    )


def test_example_b_spatial_reset_s1():
    check(EX_B, "spatial-reset", txt(0, 1) + grid(3, 2, 2, lambda g, r, c: (2 + g, r, c)) + txt(5, 6), -9, stride=1.0)


def test_example_b_hf523_qwen2vl_spatial_advance():
    # HF 5.23 Qwen2-VL advances only max(H, W): <ve> at 4 overlaps the video's t range.
    check(
        EX_B,
        "mrope",
        txt(0, 1) + grid(3, 2, 2, lambda g, r, c: (2 + g, 2 + r, 2 + c)) + txt(4, 5),
        -10,
        stride=1.0,
        advance="spatial",
    )


def test_example_b_hf523_qwen25vl_per_item_interval():
    # Section 2.3: 5.23 Qwen2.5-VL with tokens_per_second=4 (interval 4): next text at 4, video t reaches 10.
    ids, nxt = R.positions(EX_B, "mrope", stride=[4.0], advance="spatial")
    assert ids[2:14] == grid(3, 2, 2, lambda g, r, c: (2 + 4 * g, 2 + r, 2 + c))
    assert max(t for t, _, _ in ids) == 10
    assert ids[14:] == txt(4, 5) and nxt == 6


def test_fractional_stride_truncates():
    # Section 1.2: stride 0.5 -> temporal offsets 0, 0, 1 (int64 truncation).
    ids, nxt = R.positions(EX_B, "mrope", stride=0.5)
    assert [ids[2 + 4 * g][0] for g in range(3)] == [2, 2, 3]
    assert nxt == 2 + max(1, 1, 1) + 1 + 2
    ids2, _ = R.positions(EX_B, "mrope", stride=[0.7])  # int(1.4) = 1
    assert [ids2[2 + 4 * g][0] for g in range(3)] == [2, 2, 3]


# ------------------------------------------------- Qwen3-VL-style variant of (b)
EX_B_Q3 = [("text", 2)] + [("text", 2), ("video", 1, 2, 2), ("text", 1)] * 3 + [("text", 1)]


def _q3_expected(reset):
    ids = txt(0, 1)
    for st in (4, 9, 14):
        ids += txt(st - 2, st - 1)  # <ts> <vs>
        ids += grid(
            1, 2, 2, (lambda g, r, c, st=st: (st, r, c)) if reset else (lambda g, r, c, st=st: (st, st + r, st + c))
        )
        ids += txt(st + 2)  # <ve>
    return ids + txt(17)


@pytest.mark.parametrize("stride", [1.0, 2.0])
def test_example_b_qwen3vl_style(stride):
    assert R.num_tokens(EX_B_Q3) == 24
    check(EX_B_Q3, "mrope", _q3_expected(False), -6, stride=stride)
    check(EX_B_Q3, "spatial-reset", _q3_expected(True), -6, stride=stride)


# ------------------------------------------------------------------ properties
@pytest.mark.parametrize("layout", [EX_A, EX_B, EX_B_Q3])
@pytest.mark.parametrize("stride", [1.0, 2.0])
def test_spatial_reset_text_equals_mrope_and_delta_is_max_plus_one(layout, stride):
    m, nm = R.positions(layout, "mrope", stride=stride)
    s, ns = R.positions(layout, "spatial-reset", stride=stride)
    assert nm == ns
    assert [a[0] for a in m] == [b[0] for b in s]  # t row identical
    for ids, nxt in ((m, nm), (s, ns)):
        assert nxt == max(max(p) for p in ids) + 1
    # text tokens get identical (p, p, p) ids under both designs
    kinds = [it[0] for it in layout for _ in range(R.num_tokens([it]))]
    for i, kind in enumerate(kinds):
        if kind == "text":
            assert m[i] == s[i] and m[i][0] == m[i][1] == m[i][2]


def test_text_only_equals_vanilla():
    lay = [("text", 7)]
    for d in R.DESIGNS:
        assert R.positions(lay, d) == (txt(*range(7)), 7)


def test_batch_positions_padding_and_deltas():
    lays = [EX_A, [("text", 5)]]
    rows, deltas = R.batch_positions(lays, pad_side="left", design="mrope")
    assert [len(r) for r in rows] == [21, 21]
    assert rows[0] == R.positions(EX_A, "mrope")[0]
    assert rows[1] == [(0, 0, 0)] * 16 + txt(0, 1, 2, 3, 4)
    assert deltas == [-12, 0]
    rows, deltas = R.batch_positions(lays, pad_side="right", design="spatial-reset")
    assert rows[1] == txt(0, 1, 2, 3, 4) + [(0, 0, 0)] * 16
    assert deltas == [-12, 0]


def test_bad_stride_count():
    with pytest.raises(ValueError):
        R.positions(EX_B, "mrope", stride=[1.0, 2.0])


# ---------------------------------------------------------- frequency allocation
def _counts(axes):
    return [axes.count(k) for k in range(3)]


def test_chunked_16_24_24():
    ax = R.chunked_axes(64, [16, 24, 24])
    assert ax == [0] * 16 + [1] * 24 + [2] * 24
    assert set(range(0, 16)) == {i for i, a in enumerate(ax) if a == 0}
    assert set(range(16, 40)) == {i for i, a in enumerate(ax) if a == 1}
    assert set(range(40, 64)) == {i for i, a in enumerate(ax) if a == 2}


def test_interleaved_24_20_20():
    ax = R.interleaved_axes(64, [24, 20, 20])
    assert ax[:60] == [0, 1, 2] * 20 and ax[60:] == [0, 0, 0, 0]
    assert _counts(ax) == [24, 20, 20]


def test_interleaved_16_24_24_round_robin():
    ax = R.interleaved_axes(64, [16, 24, 24])
    assert ax == [i % 3 for i in range(64)]
    assert _counts(ax) == [22, 21, 21]
    assert {i for i, a in enumerate(ax) if a == 0} == set(range(0, 64, 3))


def test_interleaved_ignores_s_t():
    assert R.interleaved_axes(64, [0, 20, 20]) == R.interleaved_axes(64, [99, 20, 20])


# ------------------------------------------------------------ numeric spot check
THETA = R.inv_freq(128, 1e6)


def test_inv_freq_values():
    for got, want in zip(THETA[:4], [1.0, 0.8058422, 0.6493816, 0.5232992], strict=True):
        assert got == pytest.approx(want, rel=1e-5)
    assert THETA[63] == pytest.approx(1.240938e-6, rel=1e-5)


def _token_a(design):
    ids, _ = R.positions(EX_A, design)
    return ids[3 + 4 * 2 + 1]  # image token r=2, c=1


@pytest.mark.parametrize(
    "design, axes, want",
    [
        ("mrope", R.interleaved_axes(64, [24, 20, 20]), [3.0, 4.029211, 2.597527, 1.569897, 2.108483, 1.359283]),
        (
            "spatial-reset",
            R.interleaved_axes(64, [24, 20, 20]),
            [3.0, 1.611684, 0.649382, 1.569897, 0.843393, 0.339821],
        ),
        ("mrope", R.chunked_axes(64, [16, 24, 24]), [3.0, 2.417527, 1.948145, 1.569897, 1.265090, 1.019462]),
    ],
)
def test_spot_check_angles(design, axes, want):
    pos = _token_a(design)
    assert pos == {"mrope": (3, 5, 4), "spatial-reset": (3, 2, 1)}[design]
    ang = R.angles(pos, axes, THETA)
    assert ang[:6] == pytest.approx(want, rel=1e-5)
    cos, sin = R.cos_sin(pos, axes, THETA)
    assert len(cos) == len(sin) == 128
    assert cos[:64] == cos[64:] and sin[:64] == sin[64:]
    assert cos[:6] == pytest.approx([math.cos(a) for a in want], rel=1e-5, abs=1e-6)
    assert sin[:6] == pytest.approx([math.sin(a) for a in want], rel=1e-5, abs=1e-6)


# -------------------------------------------------------------------- rotation
def test_rotate_half_and_identity():
    x = [float(i + 1) for i in range(8)]
    assert R.rotate_half(x) == [-5.0, -6.0, -7.0, -8.0, 1.0, 2.0, 3.0, 4.0]
    cos, sin = R.cos_sin((0, 0, 0), [0, 1, 2, 0], R.inv_freq(8, 1e4))
    assert R.rotate(x, cos, sin) == x


def test_rotate_is_pairwise_rotation_and_relative():
    P, axes, th = 4, [0] * 4, R.inv_freq(8, 1e4)
    q = [0.3, -1.2, 0.7, 2.0, -0.5, 0.1, 1.4, -0.8]
    k = [1.1, 0.4, -0.9, 0.2, 0.6, -1.3, 0.5, 0.9]

    def dot(a, b):
        return sum(u * v for u, v in zip(a, b, strict=True))

    def rot(v, p):
        return R.rotate(v, *R.cos_sin((p, p, p), axes, th))

    # pair i = (channel i, channel i+P) is rotated by angle p*theta_i: norms preserved per pair
    rq = rot(q, 5)
    for i in range(P):
        assert rq[i] ** 2 + rq[i + P] ** 2 == pytest.approx(q[i] ** 2 + q[i + P] ** 2)
    assert rq[0] == pytest.approx(q[0] * math.cos(5) - q[P] * math.sin(5))
    # scores depend only on the relative offset
    assert dot(rot(q, 7), rot(k, 3)) == pytest.approx(dot(rot(q, 14), rot(k, 10)))
