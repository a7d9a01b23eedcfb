"""Per-Token Distance (PTD) of the position designs on one prompt: 5 text tokens, a 3 x 3 image, 3 text tokens.

PTD (Circle-RoPE paper, Eq. 1) is 0 when every text token is equally far from all image tokens. Circle-RoPE
puts the image on a ring orthogonal to the text axis, which makes it 0; 1D ("hard") flattening and the grids
of MRoPE / spatial-reset do not.

    python examples/ptd.py
"""

from __future__ import annotations

import torch

from mmrope_hf.metrics import ptd
from mmrope_hf.positions.design import PositionOptions
from mmrope_hf.positions.layout import IMAGE, VisualBlock
from mmrope_hf.positions.registry import POSITION_DESIGNS

SEGMENTS = [5, VisualBlock(IMAGE, (1, 3, 3), 1.0), 3]


def main() -> None:
    image = torch.tensor([False] * 5 + [True] * 9 + [False] * 3)
    print("PTD of 5 text + 3x3 image + 3 text tokens")
    hard = torch.arange(17)[None].float()
    print(f"  {'hard (1D, one row)':<26} {ptd(hard, image, ~image):.4f}")
    for name in ("vanilla", "mrope", "spatial-reset", "circle"):
        positions = POSITION_DESIGNS.get(name).row(SEGMENTS, PositionOptions()).positions
        print(f"  {name + ' (t, h, w)':<26} {ptd(positions, image, ~image):.4f}")
        if name == "circle":
            print("    first image token:", [round(v, 3) for v in positions[:, 5].tolist()])


if __name__ == "__main__":
    main()
