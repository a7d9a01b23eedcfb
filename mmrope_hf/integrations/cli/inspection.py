"""``mmrope inspect``: the positions and frequency maps of schemes on a prompt layout, as a table and a PNG.

A layout is an ordered list of items: ``("text", n)`` (n text tokens), ``("image", "1x8x8")`` or
``("video", "3x4x4")`` (a grid in patches, before the 2x2 merge: it holds t*h*w/4 placeholder tokens). Vision
start/end tokens are not added: count them in the text runs, as in the worked examples.
"""

from __future__ import annotations

from typing import Sequence

import torch
from tqdm.auto import tqdm

from mmrope_hf.config import NATIVE, resolve_config
from mmrope_hf.frequencies.allocation import ALLOCATIONS
from mmrope_hf.positions.builder import build_position_ids

MERGE = 2
AXES = ("t", "h", "w")


def layout_tensors(items: Sequence[tuple[str, str | int]]) -> dict[str, torch.Tensor | None]:
    """``input_ids``/``mm_token_type_ids`` (1, L) and the grids of a layout (see the module docstring)."""
    types: list[int] = []
    grids: dict[str, list] = {"image": [], "video": []}
    for kind, value in items:
        if kind == "text":
            types += [0] * int(value)
            continue
        try:
            grid = [int(v) for v in str(value).lower().split("x")]
        except ValueError:
            grid = []
        if len(grid) != 3 or min(grid) < 1 or grid[1] % MERGE or grid[2] % MERGE:
            raise ValueError(f"--{kind} takes TxHxW in patches with even H and W (e.g. 1x8x8), got {value!r}")
        grids[kind].append(grid)
        types += [1 if kind == "image" else 2] * (grid[0] * grid[1] * grid[2] // MERGE**2)
    if not types:
        raise ValueError("the layout is empty: give at least one --text, --image or --video")
    tensor = torch.tensor([types])

    def as_grid(g: list) -> torch.Tensor | None:
        return torch.tensor(g) if g else None

    return {
        "input_ids": torch.zeros_like(tensor),
        "mm_token_type_ids": tensor,
        "image_grid_thw": as_grid(grids["image"]),
        "video_grid_thw": as_grid(grids["video"]),
    }


def scheme_positions(schemes: Sequence[str], tensors: dict, num_layers: int = 2) -> dict[str, tuple]:
    """scheme -> (positions (3K, L) of the only row, rope_deltas (K,), position set names)."""
    out = {}
    for scheme in tqdm(schemes, desc="positions", disable=len(schemes) < 4):
        config = resolve_config(scheme)
        positions, deltas = build_position_ids(config, num_layers=num_layers, **tensors)
        names = list(dict.fromkeys(config.designs))[: positions.shape[0] // 3]
        out[scheme] = (positions[:, 0], deltas[0], names)
    return out


def frequency_map(scheme: str, head_dim: int, kv_heads: int, native: str) -> tuple[str, list[list[int]]]:
    """(allocation name, rows): one row per KV head for a head allocation, else one row; entries are the axis
    (0 t, 1 h, 2 w, -1 none) of each rotary pair."""
    config = resolve_config(scheme)
    name = native if config.frequency == NATIVE else config.frequency
    plan = ALLOCATIONS.get(name).plan(head_dim // 2, kv_heads, config.mrope_section, dict(config.options))
    pairs = head_dim // 2
    if plan.head_axes is not None:
        return name, [[axis] * pairs for axis in plan.head_axes]
    return name, [list(plan.pair_axes or ())]


def table(tensors: dict, results: dict) -> str:
    """One line per token: index, kind, and (t, h, w) per scheme and position set; then the rope_deltas."""
    kinds = {0: "text", 1: "image", 2: "video"}
    header = f"{'#':>4} {'kind':<6}" + "".join(
        f" {f'{s}[{n}]':>26}" for s, (_, _, names) in results.items() for n in names
    )
    lines = [header]
    for i, kind in enumerate(tensors["mm_token_type_ids"][0].tolist()):
        cells = []
        for positions, _, names in results.values():
            for k in range(len(names)):
                t, h, w = (round(float(v), 3) for v in positions[3 * k : 3 * k + 3, i])
                cells.append(f" {f'({t:g}, {h:g}, {w:g})':>26}")
        lines.append(f"{i:>4} {kinds[kind]:<6}" + "".join(cells))
    deltas = "".join(f" {', '.join(f'{float(d):g}' for d in deltas):>26}" for _, deltas, names in results.values())
    lines.append(f"{'':>4} {'delta':<6}{deltas}")
    return "\n".join(lines)


def draw(tensors: dict, results: dict, maps: dict, path: str) -> None:
    """Positions in 3D (first position set of each scheme) and the frequency maps, side by side, as a PNG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ValueError("drawing needs matplotlib: pip install 'mmrope-hf[bench]'") from None
    types = tensors["mm_token_type_ids"][0]
    count = len(results)
    fig = plt.figure(figsize=(4.2 * count, 8))
    for i, (scheme, (positions, _, names)) in enumerate(tqdm(results.items(), desc="drawing", disable=count < 4)):
        ax = fig.add_subplot(2, count, i + 1, projection="3d")
        t, h, w = (positions[k].float().numpy() for k in range(3))
        text = (types == 0).numpy()
        ax.plot(w[text], h[text], t[text], "o-", color="black", markersize=3, label="text")
        visual = ~text
        ax.scatter(w[visual], h[visual], t[visual], c=range(int(visual.sum())), cmap="viridis", s=14, label="visual")
        ax.set_xlabel("w"), ax.set_ylabel("h"), ax.set_zlabel("t")
        ax.set_title(f"{scheme} ({names[0]})")
        name, rows = maps[scheme]
        ax2 = fig.add_subplot(2, count, count + i + 1)
        image = ax2.imshow(
            rows,
            aspect="auto",
            cmap=matplotlib.colors.ListedColormap(["white", "tab:red", "tab:green", "tab:blue"]),
            vmin=-1.5,
            vmax=2.5,
            interpolation="nearest",
        )
        ax2.set_title(f"{name}: axis per rotary pair")
        ax2.set_xlabel("rotary pair (0 = highest frequency)")
        ax2.set_ylabel("KV head" if len(rows) > 1 else "")
        ax2.set_yticks(range(len(rows)))
    cbar = fig.colorbar(image, ax=fig.axes[-1], ticks=[-1, 0, 1, 2])
    cbar.ax.set_yticklabels(["none", "t", "h", "w"])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
