"""Independent pure-Python reference for the baseline / ablation position designs and frequency maps.

Written from /work/shared/reference/multimodal_ropes.md (sections 2.2, 2.7, 2.8, 2.10, 2.12 and 6) and the
paper's text, not from any library code. No torch; only lists, ``fractions`` and ``math``.

Layout: as in ``rope_reference``, a list of ``("text", n)`` or ``("image"|"video", T, H, W)`` items with the token
grid AFTER the spatial merge; visual tokens row-major over (t, h, w), w fastest. ``stride`` is one number for every
visual item or one per visual item (in order of appearance); for ``hope`` it is the stride the block was given.

Positions are exact ``Fraction`` values (floats in the arguments are converted exactly), so the tests compare
against the float32 the library returns with an explicit tolerance or after rounding.
"""

import math
from fractions import Fraction

DESIGNS = ("videorope", "hope", "v2pe", "text-spatial-reset", "modality-interval")


def _strides(layout, stride):
    visual = [it for it in layout if it[0] != "text"]
    strides = list(stride) if isinstance(stride, (list, tuple)) else [stride] * len(visual)
    if len(strides) != len(visual):
        raise ValueError(f"{len(strides)} strides given for {len(visual)} visual items")
    return iter(Fraction(s) for s in strides)


def positions(layout, design, stride=1, visual_stride=16):
    """``(ids, next_position)``: ``ids`` one (t, h, w) tuple per token (the effective positions: for
    ``text-spatial-reset`` text is (p, 0, 0)), ``next_position`` the position the next text token gets on t.

    - ``videorope`` / ``hope``: visual (T, T + r - (H-1)//2, T + c - (W-1)//2), T = st + g*s (exact); next
      = last T + 1.
    - ``v2pe``: 1D; a block of N tokens after a token at ``last``: last + visual_stride*(k+1)/N; text after it at
      ceil(last visual) + 1.
    - ``text-spatial-reset``: text (p, 0, 0); visual (st + floor(g*s), r, c); next = st + max(floor((T-1)s), H-1,
      W-1) + 1 (spatial-reset's "max" rule).
    - ``modality-interval``: text (p, p, p); visual (st + floor(g*s), r, c); next = st + max(T*H*W, extent + 1).
    """
    if design not in DESIGNS:
        raise ValueError(f"design must be one of {DESIGNS}, got {design!r}")
    strides = _strides(layout, stride)
    ids, p = [], Fraction(0)  # p: where the next token goes
    for item in layout:
        if item[0] == "text":
            for q in range(item[1]):
                ids.append((p + q, 0, 0) if design == "text-spatial-reset" else (p + q,) * 3)
            p += item[1]
            continue
        _, T, H, W = item
        s = next(strides)
        if design in ("videorope", "hope"):
            for g in range(T):
                tt = p + g * s
                for r in range(H):
                    for c in range(W):
                        ids.append((tt, tt + r - (H - 1) // 2, tt + c - (W - 1) // 2))
            p = p + (T - 1) * s + 1
        elif design == "v2pe":
            n, last = T * H * W, p - 1
            for k in range(n):
                ids.append((last + Fraction(visual_stride) * (k + 1) / n,) * 3)
            p = math.ceil(ids[-1][0]) + 1
        else:
            for g in range(T):
                for r in range(H):
                    for c in range(W):
                        ids.append((p + math.floor(g * s), r, c))
            extent = max(math.floor((T - 1) * s), H - 1, W - 1)
            p = p + (max(T * H * W, extent + 1) if design == "modality-interval" else extent + 1)
    return ids, p


def stored(ids, design):
    """What ``get_rope_index`` returns: ``text-spatial-reset`` keeps h and w relative to t, (t, t + h, t + w)."""
    if design != "text-spatial-reset":
        return list(ids)
    return [(t, t + h, t + w) for t, h, w in ids]


# --- frequency maps over the P rotary pairs (0 = T, 1 = H, 2 = W, -1 = no rotation) --------------------------------


def videorope_official_axes(P, section):
    """Official VideoRoPE: the first s_h + s_w pairs H, W, H, W, ... (H on even pairs), the last s_t pairs T."""
    s_t, s_h, s_w = section
    if s_h != s_w or s_t + s_h + s_w != P:
        raise ValueError("the reference only covers s_h == s_w and a section that sums to P")
    return [1 if i % 2 == 0 else 2 for i in range(2 * s_h)] + [0] * s_t


def videorope_repo_axes(P, section):
    """JJJYmmm/Multimodal-RoPEs: T everywhere, then H on odd i < 2 s_h, W on even i in [2, 2 s_w)."""
    _, s_h, s_w = section
    out = []
    for i in range(P):
        if i % 2 == 1 and i < 2 * s_h:
            out.append(1)
        elif i % 2 == 0 and 2 <= i < 2 * s_w:
            out.append(2)
        else:
            out.append(0)
    return out


def hope_axes(axes):
    """HoPE's hybrid allocation: the temporal pairs of a VideoRoPE map get no rotation."""
    return [-1 if a == 0 else a for a in axes]


def reserved_t_axes(P, n):
    """IL-RoPE-like (our reading): T, H, W round robin over the first 3n pairs, T on the P - 3n lowest ones."""
    return [(0, 1, 2)[i % 3] if i < 3 * n else 0 for i in range(P)]


def inv_freq(head_dim, base):
    return [base ** (-(2 * i) / head_dim) for i in range(head_dim // 2)]


def angles(pos_thw, axes, base, head_dim, spatial_base=None):
    """Per-pair angles of one token; -1 pairs get 0; with ``spatial_base`` the H/W pairs use that base."""
    out = []
    for i, a in enumerate(axes):
        if a == -1:
            out.append(0.0)
            continue
        b = spatial_base if spatial_base is not None and a in (1, 2) else base
        out.append(float(pos_thw[a]) * b ** (-(2 * i) / head_dim))
    return out


def cos_sin(pos_thw, axes, base, head_dim, spatial_base=None):
    emb = angles(pos_thw, axes, base, head_dim, spatial_base) * 2
    return [math.cos(a) for a in emb], [math.sin(a) for a in emb]
