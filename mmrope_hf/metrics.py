"""Metrics of position layouts."""

from __future__ import annotations

import torch


def ptd(positions: torch.Tensor, image_mask: torch.Tensor, text_mask: torch.Tensor) -> float:
    """Per-Token Distance (Circle-RoPE paper v2, Eq. 1): how unevenly each text token sees the image tokens.

    PTD = 1/(N_img N_txt) sum_t sum_i |d(t, i) - mean_i d(t, i)|, with d the Euclidean distance between
    position vectors: the mean absolute deviation of every text token's distances to the image tokens,
    averaged over text tokens. 0 means every text token is equally far from all image tokens.

    Args:
        positions (`torch.Tensor` of shape `(3, L)`): the (t, h, w) rows of one sequence, i.e. ``positions[:, b]``
            of ``get_rope_index``'s ``(3, B, L)`` output; any number of rows works (`(1, L)` for 1D positions).
        image_mask (`torch.Tensor` of shape `(L,)`, bool): the image tokens (at least one).
        text_mask (`torch.Tensor` of shape `(L,)`, bool): the text tokens (at least one).

    Returns:
        The PTD, computed in float64.

    1D positions ("hard" flattening, one row) of a 3 x 3 image at 0..8 followed by 5 text tokens at 9..13; the
    same counter copied to three rows (the ``vanilla`` design) scales every distance, and the PTD, by sqrt(3):

    >>> image = torch.arange(14) < 9
    >>> round(ptd(torch.arange(14)[None], image, ~image), 6), round(20 / 9, 6)
    (2.222222, 2.222222)
    >>> round(ptd(torch.arange(14).expand(3, -1), image, ~image) / 3**0.5, 6)
    2.222222
    """
    if positions.dim() != 2 or image_mask.shape != positions.shape[1:] or text_mask.shape != positions.shape[1:]:
        raise ValueError(
            f"ptd needs positions of shape (3, L) and masks of shape (L,), got {tuple(positions.shape)}, "
            f"{tuple(image_mask.shape)} and {tuple(text_mask.shape)}"
        )
    image_mask, text_mask = image_mask.bool(), text_mask.bool()
    if not image_mask.any() or not text_mask.any():
        raise ValueError(
            f"ptd needs at least one image and one text token, got {int(image_mask.sum())} and {int(text_mask.sum())}"
        )
    points = positions.to(torch.float64).T
    distances = (points[text_mask, None] - points[None, image_mask]).norm(dim=-1)  # (N_txt, N_img)
    return float((distances - distances.mean(dim=1, keepdim=True)).abs().mean())
