"""Independent float64 NumPy reference for Circle-RoPE positions, one row at a time.

Written from /work/shared/reference/circlerope.md sections 1.2-1.4 (the reference code's algorithm, step
by step, with the explicit plane basis u, v and P = a u + b v), not from mmrope_hf. Beyond the spec, as
the project decided: a video of T temporal groups repeats the frame's ring T times, group g moved by
g * stride on all three rows; ``auto_radius="l2"`` is the paper's Eq. 9 radius rule.

Layout: a list of ``("text", n)``, ``("image", T, H, W)`` or ``("video", T, H, W)`` items, grids after the
spatial merge; visual tokens in row-major (t, h, w) order.
"""

import math

import numpy as np

DEFAULTS = dict(
    radius=10.0,
    auto_radius="max-coordinate",
    alpha=0.5,
    move_to_origin=True,
    move_to_positive=False,
    dff_rate=0.0,
    method="circle",
)


def plane_basis():
    """u, v spanning the plane orthogonal to the text direction n = (1, 1, 1)/sqrt(3), in (x, y, z) order."""
    n = np.ones(3) / math.sqrt(3.0)
    u = np.array([-n[1], n[0], 0.0])
    u /= np.linalg.norm(u)
    v = np.cross(n, u)
    return u, v / np.linalg.norm(v)


def frame_points(H, W, radius, auto_radius, alpha, move_to_origin, move_to_positive, dff_rate, method):
    """(t, h, w) offsets from s (1, 1, 1) of one H x W frame, raster order, as an (H*W, 3) array."""
    grid = [(w, h) for h in range(H) for w in range(W)]  # (x, y) = (w, h); z = t = 0 for one frame
    if move_to_origin:
        grid = [(x - (W - 1) / 2.0, y - (H - 1) / 2.0) for x, y in grid]
    if isinstance(radius, str):
        scale = 1.0 if radius == "auto" else float(radius.split("-", 1)[1])
        if auto_radius == "l2":
            extent = max(math.sqrt(x * x + y * y) for x, y in grid)
        else:
            extent = abs(max(max(x for x, _ in grid), max(y for _, y in grid), 0.0))
        radius = scale * extent
    theta = [math.atan2(y, x) for x, y in grid]
    lo, hi = min(theta), max(theta)
    u, v = plane_basis()
    points = []
    for k, ((x, y), th) in enumerate(zip(grid, theta, strict=True)):
        sa = (th - lo) / (hi - lo) * 2 * math.pi if hi - lo > 0 else th
        ga = 2 * math.pi * k / (H * W)
        phi = alpha * sa + (1 - alpha) * ga
        ring = (radius * math.cos(phi), radius * math.sin(phi)) if method == "circle" else (x, y)
        a = (1 - dff_rate) * ring[0] + dff_rate * x
        b = (1 - dff_rate) * ring[1] + dff_rate * y
        X, Y, Z = a * u + b * v  # X -> w, Y -> h, Z -> t
        points.append((Z, Y, X))
    points = np.array(points, dtype=np.float64)
    if move_to_positive is not False:
        points += abs(points.min()) + (0.0 if move_to_positive == "auto" else float(move_to_positive))
    return points


def positions(layout, stride=1.0, **options):
    """Circle-RoPE positions of one row.

    ``stride`` is the temporal step of videos: one float, or one per visual item in order. ``options`` override
    ``DEFAULTS`` (the reference config.json values). Returns ``(ids, next_position)``: a list of (t, h, w) float
    tuples, one per token, and max(all positions) + 1.
    """
    opts = {**DEFAULTS, **options}
    visual = [item for item in layout if item[0] != "text"]
    strides = list(stride) if isinstance(stride, (list, tuple)) else [stride] * len(visual)
    ids, used = [], 0
    for item in layout:
        start = max(max(p) for p in ids) + 1 if ids else 0.0  # max over all three rows of everything so far + 1
        if item[0] == "text":
            ids += [(start + j,) * 3 for j in range(item[1])]
            continue
        _, T, H, W = item
        frame = frame_points(H, W, **opts)
        for g in range(T):
            ids += [tuple(start + g * strides[used] + frame[k]) for k in range(H * W)]
        used += 1
    return ids, (max(max(p) for p in ids) + 1 if ids else 0.0)
