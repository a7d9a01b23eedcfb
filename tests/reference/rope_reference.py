"""Independent pure-Python reference for multimodal RoPE position ids and frequency maps.

Written from /work/shared/reference/multimodal_ropes.md (sections 1, 2.1, 2.3, 2.4, 2.5, 6),
not from any library code. No torch; only lists and ``math``.

Layout: a list of items, each ``("text", n)`` or ``("image", T, H, W)`` / ``("video", T, H, W)``,
where T, H, W are the token grid AFTER spatial merge; visual tokens are row-major over
(t, h, w) with w fastest.
"""

import math

DESIGNS = ("vanilla", "mrope", "spatial-reset")


def _check_layout(layout):
    for item in layout:
        if item[0] == "text":
            if len(item) != 2 or item[1] < 0:
                raise ValueError(f"bad text item {item!r}")
        elif item[0] in ("image", "video"):
            if len(item) != 4 or min(item[1:]) < 1:
                raise ValueError(f"bad visual item {item!r}")
        else:
            raise ValueError(f"unknown item kind {item[0]!r}")


def num_tokens(layout):
    """Number of tokens in a layout (text counts + T*H*W per visual block)."""
    _check_layout(layout)
    return sum(it[1] if it[0] == "text" else it[1] * it[2] * it[3] for it in layout)


def positions(layout, design, stride=1.0, advance="max"):
    """Position ids of every token of ``layout`` under ``design``.

    Returns ``(ids, next_position)``: ``ids`` is a list of (t, h, w) int tuples, one per token,
    and ``next_position`` is the position the next (e.g. first generated) token would get.

    - ``"vanilla"``: 1D counter over all tokens, copied to all three axes (stride/advance ignored).
    - ``"mrope"``: text (p, p, p); visual token (g, r, c) of a block starting at ``st`` gets
      (st + int(g*s), st + r, st + c).
    - ``"spatial-reset"``: visual token gets (st + int(g*s), r, c); text as in mrope.

    After a visual block (mrope / spatial-reset) the next position is
    ``st + max(int((T-1)*s), H-1, W-1) + 1`` for ``advance="max"`` (paper / HF 4.x), or
    ``st + max(H, W)`` for ``advance="spatial"`` (HF 5.23 Qwen2/2.5-VL; ignores T).

    ``stride`` is one float for all visual items, or a list with one float per visual item in
    order of appearance (e.g. Qwen2.5-VL's tokens_per_second * second_per_grid_ts). Temporal
    offsets are truncated toward zero (``int``, like torch ``.long()``), which equals floor for
    the non-negative values used here.
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    if advance not in ("max", "spatial"):
        raise ValueError(f"advance must be 'max' or 'spatial', got {advance!r}")
    _check_layout(layout)
    visual = [it for it in layout if it[0] != "text"]
    strides = list(stride) if isinstance(stride, (list, tuple)) else [stride] * len(visual)
    if len(strides) != len(visual):
        raise ValueError(f"{len(strides)} strides given for {len(visual)} visual items")

    ids, p, k = [], 0, 0  # p = next free position, k = visual item index
    for item in layout:
        if item[0] == "text":
            ids += [(q, q, q) for q in range(p, p + item[1])]
            p += item[1]
            continue
        _, T, H, W = item
        s, k = strides[k], k + 1
        if design == "vanilla":
            ids += [(q, q, q) for q in range(p, p + T * H * W)]
            p += T * H * W
            continue
        off = 0 if design == "spatial-reset" else p
        for g in range(T):
            for r in range(H):
                for c in range(W):
                    ids.append((p + int(g * s), off + r, off + c))
        if advance == "max":
            p = p + max(int((T - 1) * s), H - 1, W - 1) + 1
        else:
            p = p + max(H, W)
    return ids, p


def rope_delta(layout, design, stride=1.0, advance="max"):
    """``next_position - num_tokens(layout)``; 0 for vanilla.

    With ``advance="max"`` this equals max(all ids) + 1 - len. With ``advance="spatial"`` a
    multi-group video can reach t ids above ``next_position`` and the two may differ.
    """
    ids, nxt = positions(layout, design, stride, advance)
    return nxt - len(ids)


def batch_positions(layouts, pad_side="left", design="mrope", stride=1.0, advance="max"):
    """Position ids for a batch, padded to the longest row.

    Returns ``(rows, deltas)``: ``rows[b]`` is a list of (t, h, w) tuples of the common length,
    padding slots are (0, 0, 0) on the ``pad_side`` ("left" or "right"); ``deltas[b]`` is
    ``rope_delta`` of the UNPADDED row (subtract the row's pad count to get a delta relative to
    the padded length). ``stride``/``advance`` are applied to every row alike.
    """
    if pad_side not in ("left", "right"):
        raise ValueError(f"pad_side must be 'left' or 'right', got {pad_side!r}")
    per_row = [positions(lay, design, stride, advance) for lay in layouts]
    width = max((len(ids) for ids, _ in per_row), default=0)
    rows, deltas = [], []
    for ids, nxt in per_row:
        pad = [(0, 0, 0)] * (width - len(ids))
        rows.append(pad + ids if pad_side == "left" else ids + pad)
        deltas.append(nxt - len(ids))
    return rows, deltas


def chunked_axes(P, sections):
    """MRoPE chunked pair->axis map: first s_t pairs T (0), next s_h H (1), next s_w W (2)."""
    if sum(sections) != P:
        raise ValueError(f"sections {sections} must sum to P={P}")
    return [0] * sections[0] + [1] * sections[1] + [2] * sections[2]


def interleaved_axes(P, sections):
    """MRoPE-I interleaved pair->axis map (s_t is not read).

    Pair i -> H (1) if i % 3 == 1 and i < 3*s_h; -> W (2) if i % 3 == 2 and i < 3*s_w; else T (0).
    """
    _, s_h, s_w = sections
    out = []
    for i in range(P):
        if i % 3 == 1 and i < 3 * s_h:
            out.append(1)
        elif i % 3 == 2 and i < 3 * s_w:
            out.append(2)
        else:
            out.append(0)
    return out


def inv_freq(head_dim, base):
    """RoPE inverse frequencies ``base ** (-(2i)/head_dim)`` for i in range(head_dim // 2)."""
    return [base ** (-(2 * i) / head_dim) for i in range(head_dim // 2)]


def angles(pos_thw, axes, inv_freq):
    """Per-pair angles ``pos[axes[i]] * inv_freq[i]`` (length P) for one token."""
    if len(axes) != len(inv_freq):
        raise ValueError("axes and inv_freq must have the same length P")
    return [float(pos_thw[a]) * f for a, f in zip(axes, inv_freq, strict=True)]


def cos_sin(pos_thw, axes, inv_freq):
    """(cos, sin) lists of length 2P for one token: emb = angles + angles, float64 math."""
    emb = angles(pos_thw, axes, inv_freq) * 2
    return [math.cos(a) for a in emb], [math.sin(a) for a in emb]


def rotate_half(x):
    """NeoX rotate-half: concat(-x[P:], x[:P])."""
    P = len(x) // 2
    return [-v for v in x[P:]] + list(x[:P])


def rotate(x, cos, sin):
    """Apply RoPE to one vector of length 2P: x*cos + rotate_half(x)*sin."""
    if not (len(x) == len(cos) == len(sin)) or len(x) % 2:
        raise ValueError("x, cos, sin must share one even length")
    return [a * c + b * s for a, b, c, s in zip(x, rotate_half(x), cos, sin, strict=True)]
