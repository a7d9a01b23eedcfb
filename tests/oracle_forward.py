"""The expected output of a patched model, built without the patch: the unpatched (stock) model whose rotating
decoder layers are handed cos/sin computed from the independent references (tests/reference: positions and
frequency maps written from the papers' formulas), float64 maths cast to float32.

Nothing here imports the plugin. What the test states, per scheme, is the paper's recipe (configs/*.yaml): which
position design each layer reads, which frequency allocation, which temporal stride; per family, how the stock
rotary lays its pairs out (read off the transformers source of that family): channel pairing (NeoX halves or GPT-J
adjacent), the rotated part of the head, the native pair map. For MHRoPE (one axis per KV head over the full
spectrum) the family's ``apply_rotary_pos_emb`` is replaced, during the forward only, by a per-head rotation
written here.

A stock-scheme (``mrope``) call checks the helper itself: it must reproduce the stock model (tests/test_parity.py).
"""

from __future__ import annotations

import gc
import sys
from contextlib import contextmanager

import torch
from conftest import reference_layout
from reference import baselines_reference, circle_reference, rope_reference

from mmrope_hf.testing import tiny_model

T, H, W, NOPE = 0, 1, 2, -1
ADJACENT = ("glm4v", "glm_ocr", "ernie4_5_vl_moe")  # GPT-J pairs: channels 2i, 2i + 1 (GLM-4.5V/4.6V: halves)
INTERLEAVED = ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe", "cosmos3_edge")  # native MRoPE-I-style map
# Stock temporal step per video group: Qwen2.5-VL's tokens_per_second (2) x 1 s per group (build_inputs' default);
# the per-frame families put T = 1 blocks behind timestamps, where the step is never read.
OWN_STRIDE = {"qwen2_5_vl": 2.0}


def own_stride(family: str) -> float:
    return OWN_STRIDE.get(family, 1.0)


# scheme -> (position design per rotating layer, cycled; frequency allocation and its section or option; stride)
# "own": the family's temporal rule. Two designs: 1-based odd rotating layers the first, even ones the second.
# Written from configs/*.yaml and the papers; sections None take the defaults below.
SCHEMES = {
    "mrope": (("mrope",), ("native", None), "own"),
    "mrope-i": (("spatial-reset",), ("interleaved", None), 1.0),
    "mrope-i-paper": (("spatial-reset",), ("interleaved", [24, 20, 20]), 1.0),
    "mhrope": (("spatial-reset",), ("multi-head", None), 1.0),
    "mhrope-paper": (("spatial-reset",), ("multi-head", [2, 3, 3]), 1.0),
    "spatial-reset": (("spatial-reset",), ("native", None), "own"),
    "vanilla": (("vanilla",), ("native", None), "own"),
    "circle": (("circle", "mrope"), ("native", None), "own"),
    "circle-age": (("circle", "mrope"), ("chunked", [16, 24, 24]), 1.0),
    "videorope": (("videorope",), ("videorope", None), 2.0),
    "hope": (("hope",), ("hope", None), 1.0),  # eval mode: the fixed stride
    "v2pe": (("v2pe",), ("native", None), "own"),  # visual_stride 16
    "ilrope": (("text-spatial-reset",), ("reserved-t", None), 1.0),
    "omnirope": (("text-spatial-reset",), ("chunked", None), 1.0),
    "ablation-3d": (("mrope",), ("interleaved", None), 1.0),
    "ablation-diagonal": (("videorope",), ("interleaved", None), 1.0),
    "ablation-ilrope-freq": (("spatial-reset",), ("reserved-t", None), 1.0),
    "ablation-modality-interval": (("modality-interval",), ("interleaved", None), 1.0),
    "ablation-scaled-base": (("spatial-reset",), ("scaled-base", 0.01), 1.0),
    "ablation-text-spatial-reset": (("text-spatial-reset",), ("interleaved", None), 1.0),
    "ablation-videorope-freq": (("spatial-reset",), ("videorope", None), 1.0),
}


def recipe(scheme: str, options: dict) -> tuple[tuple, tuple, object]:
    """(designs cycled over the rotating layers, allocation, stride) of a scheme and its ``layers`` option."""
    designs, allocation, stride = SCHEMES[scheme]
    layers = options.get("layers")
    if layers == "all":
        designs = designs[:1]
    elif layers == "alternate" and len(designs) == 2:  # the staggered presets' own schedule
        pass
    elif isinstance(layers, (list, tuple)):
        designs = tuple(layers)
    elif layers is not None:
        raise ValueError(f"oracle: unsupported layers {layers!r}")
    if set(options) - {"layers"}:
        raise ValueError(f"oracle: unsupported options {options}")
    return designs, allocation, stride


# --- per-token angles ---------------------------------------------------------------------------------------------


def row_positions(design: str, layout: list, stride: float) -> list[tuple[float, float, float]]:
    if design == "circle":
        ids, _ = circle_reference.positions(layout, stride)
        return [tuple(float(v) for v in p) for p in ids]
    if design in rope_reference.DESIGNS:
        ids, _ = rope_reference.positions(layout, design, stride)
        return [tuple(float(v) for v in p) for p in ids]
    ids, _ = baselines_reference.positions(layout, design, stride)
    return [tuple(float(v) for v in p) for p in ids]


def next_position(design: str, layout: list, stride: float) -> float:
    """The position the first token after ``layout`` gets on every axis (text resumes there)."""
    if design == "circle":
        return float(circle_reference.positions(layout, stride)[1])
    if design in rope_reference.DESIGNS:
        return float(rope_reference.positions(layout, design, stride)[1])
    return float(baselines_reference.positions(layout, design, stride)[1])


def native_pairs(family: str, pairs: int, section: list[int]) -> list[tuple[int, int]]:
    """(frequency index, axis) of every output pair of the family's stock rotary."""
    if family == "ernie4_5_vl_moe":  # [h, w, t] sections: the first s_h + s_w pairs alternate h, w; t after them
        s_h, s_w, _ = section
        return [(i, (H, W)[i % 2] if i < s_h + s_w else T) for i in range(pairs)]
    if section is None:  # a 1D-RoPE model (LLaVA, tiles): interleaved with the scaled default section (README)
        return list(enumerate(rope_reference.interleaved_axes(pairs, interleaved_section(pairs))))
    if family in INTERLEAVED:
        return list(enumerate(rope_reference.interleaved_axes(pairs, section)))
    return list(enumerate(rope_reference.chunked_axes(pairs, section)))


def interleaved_section(pairs: int) -> list[int]:
    """MRoPE-I's section scaled from the paper's [24, 20, 20] on 64 pairs: h = w = floor(5P / 16)."""
    spatial = 5 * pairs // 16
    return [pairs - 2 * spatial, spatial, spatial]


def chunked_section(pairs: int) -> list[int]:
    """MRoPE's section scaled from [16, 24, 24] on 64 pairs: h = w = floor(3P / 8)."""
    spatial = 3 * pairs // 8
    return [pairs - 2 * spatial, spatial, spatial]


def pair_specs(family: str, allocation: tuple, pairs: int, section: list[int]) -> list[tuple[int, int]]:
    """(frequency index, axis) of every output pair under ``allocation`` = (name, section or option); the model's
    own section where the allocation is the model's own (README: default mrope_section)."""
    name, given = allocation
    own_interleaved = family in INTERLEAVED or section is None  # a 1D-RoPE model's own map is interleaved
    own_chunked = family not in INTERLEAVED and family != "ernie4_5_vl_moe" and section is not None
    if name == "native":
        return native_pairs(family, pairs, section)
    if name in ("interleaved", "scaled-base"):
        own = section if own_interleaved and section is not None else interleaved_section(pairs)
        chosen = given if name == "interleaved" and given else own
        return list(enumerate(rope_reference.interleaved_axes(pairs, chosen)))
    if name == "chunked":
        chosen = given or (section if own_chunked else chunked_section(pairs))
        return list(enumerate(rope_reference.chunked_axes(pairs, chosen)))
    if name in ("videorope", "hope"):
        axes = baselines_reference.videorope_official_axes(pairs, chunked_section(pairs))
        return list(enumerate(baselines_reference.hope_axes(axes) if name == "hope" else axes))
    if name == "reserved-t":
        return list(enumerate(baselines_reference.reserved_t_axes(pairs, pairs // 4)))
    raise ValueError(f"oracle: unsupported allocation {name!r}")


def lay_out(values: torch.Tensor, family: str) -> torch.Tensor:
    """Per-pair values (..., P) as the family's cos/sin channels (..., 2P)."""
    if family in ADJACENT:
        return values.repeat_interleave(2, dim=-1)
    return torch.cat([values, values], dim=-1)


def tables(
    family: str, positions: list, specs: list[tuple[int, int]], inv_freq: list[float], spatial: list | None = None
) -> tuple:
    """cos, sin (L, 2P) float64 of one row of (t, h, w) positions; ``spatial``: the h and w pairs' own frequencies."""
    pos = torch.tensor(positions, dtype=torch.float64).reshape(-1, 3)
    freq = torch.tensor([(spatial if spatial and a in (H, W) else inv_freq)[f] for f, a in specs], dtype=torch.float64)
    axes = [a for _, a in specs]
    angles = torch.stack([pos[:, a] if a != NOPE else torch.zeros(len(pos), dtype=torch.float64) for a in axes], -1)
    angles = angles * freq
    return lay_out(angles.cos(), family), lay_out(angles.sin(), family)


# --- the model ----------------------------------------------------------------------------------------------------


def text_model(model):
    """The language model inside (``text_model`` on Idefics3 and SmolVLM)."""
    return getattr(model.model, "language_model", None) or model.model.text_model


def rotating_layers(model) -> list:
    return [layer for layer in text_model(model).layers if hasattr(layer, "self_attn")]


def _inv_freq(rope: dict, rotated: int) -> list[float]:
    """The RoPE inverse frequencies of one rope_parameters entry ("linear" scaling divides them by the factor)."""
    inv_freq = rope_reference.inv_freq(rotated, rope["rope_theta"])
    if rope["rope_type"] == "linear":
        return [f / rope["factor"] for f in inv_freq]
    if rope["rope_type"] != "default":
        raise ValueError(f"oracle: unsupported rope_type {rope['rope_type']!r}")
    return inv_freq


def geometry(model) -> tuple[int, int, int, list[list[float]], list[int] | None]:
    """(head_dim, rotated channels, KV heads, inverse frequencies per rotating layer, mrope_section or None for a
    1D-RoPE model) of the stock text model. Gemma 3 keeps one rope_parameters entry per layer type."""
    config = model.config.get_text_config()
    layers = rotating_layers(model)
    head_dim = layers[0].self_attn.head_dim
    rope = config.rope_parameters
    if "rope_theta" not in rope:  # {layer_type: parameters}
        per_layer = [rope[kind] for kind, layer in zip(config.layer_types, text_model(model).layers, strict=True)]
    else:
        per_layer = [rope] * len(text_model(model).layers)
    per_layer = [r for r, layer in zip(per_layer, text_model(model).layers, strict=True) if hasattr(layer, "self_attn")]
    rotated = int(head_dim * per_layer[0].get("partial_rotary_factor", 1.0))
    section = list(per_layer[0]["mrope_section"]) if "mrope_section" in per_layer[0] else None
    return head_dim, rotated, config.num_key_value_heads, [_inv_freq(r, rotated) for r in per_layer], section


def mhrope_head_axes(kv_heads: int, section: list[int] | None = None) -> list[int]:
    """KV heads per axis in the order t, h, w: ``section``, or the paper's default h = w = floor(3n / 8)."""
    spatial = 3 * kv_heads // 8
    t, h, w = section or (kv_heads - 2 * spatial, spatial, spatial)
    return [T] * t + [H] * h + [W] * w


def _rotate(x: torch.Tensor, family: str) -> torch.Tensor:
    if family in ADJACENT:
        return torch.stack((-x[..., 1::2], x[..., 0::2]), dim=-1).flatten(-2)
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _per_head_apply(family: str, head_axes: list[int]):
    """apply_rotary_pos_emb for cos/sin of shape (3, B, L, R): head j of k reads axis head_axes[j], query heads their
    KV group's; the channels past R pass through."""

    def apply(q, k, cos, sin, *args, **kwargs):
        def rotate(x):
            group = x.shape[1] // len(head_axes)
            axes = torch.tensor([head_axes[h // group] for h in range(x.shape[1])])
            c, s = cos[axes].transpose(0, 1).to(x.dtype), sin[axes].transpose(0, 1).to(x.dtype)  # (B, heads, L, R)
            width = c.shape[-1]
            rot, rest = x[..., :width], x[..., width:]
            return torch.cat([rot * c + _rotate(rot, family) * s, rest], dim=-1)

        return rotate(q), rotate(k)

    return apply


def layer_tables(
    family: str,
    rows: list,
    scheme: str,
    padding_side: str = "left",
    model=None,
    extra: int = 0,
    own: float | None = None,
    stride: float | None = None,
    layouts: list | None = None,
    **options,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(cos, sin) float32 that each rotating layer of ``model`` (or the family's tiny model) should read for ``rows``
    (build_inputs rows, padded on ``padding_side``) under ``scheme``: (B, L, 2P), or (3, B, L, 2P) per axis for
    MHRoPE. ``extra`` appends that many text tokens after every row (what generate adds: each set continues from
    its own next position). ``own``: the family's temporal step when not its default (Qwen2.5-VL's
    tokens_per_second x second_per_grid_ts); ``stride``: the temporal step instead of the recipe's (HoPE's draw);
    ``layouts``: tests/reference layouts of the rows, given instead of ``rows`` (the 1D-RoPE families)."""
    model = tiny_model(family) if model is None else model
    designs, allocation, step = recipe(scheme, options)
    if stride is None:
        stride = (own_stride(family) if own is None else own) if step == "own" else step
    _, rotated, _, layer_freqs, section = geometry(model)
    pairs = rotated // 2
    if layouts is None:
        layouts = [reference_layout(family, row) for row in rows]
    width = max(rope_reference.num_tokens(layout) for layout in layouts)
    heads = allocation[0] == "multi-head"
    specs = None if heads else pair_specs(family, allocation, pairs, section)

    def batch_tables(design: str, inv_freq: tuple):
        spatial = None  # the scaled-base ablation: h and w pairs on base theta * scale
        if allocation[0] == "scaled-base":
            spatial = [f * allocation[1] ** (-2 * i / rotated) for i, f in enumerate(inv_freq)]
        cos, sin = [], []
        for layout in layouts:
            positions = row_positions(design, layout, stride)
            after = next_position(design, layout, stride)
            text = [
                ((after + j, 0.0, 0.0) if design == "text-spatial-reset" else (after + j,) * 3) for j in range(extra)
            ]
            pad = [(0.0, 0.0, 0.0)] * (width - len(positions))
            positions = (pad + positions if padding_side == "left" else positions + pad) + text
            if heads:  # one table per axis over the full spectrum
                per_axis = [tables(family, positions, [(i, a) for i in range(pairs)], inv_freq) for a in (T, H, W)]
                cos.append(torch.stack([c for c, _ in per_axis]))
                sin.append(torch.stack([s for _, s in per_axis]))
            else:
                c, s = tables(family, positions, specs, inv_freq, spatial)
                cos.append(c)
                sin.append(s)
        dim = 1 if heads else 0
        return torch.stack(cos, dim).float(), torch.stack(sin, dim).float()

    sets, out = {}, []
    for i, inv_freq in enumerate(layer_freqs):
        key = (designs[i % len(designs)], tuple(inv_freq))
        if key not in sets:
            sets[key] = batch_tables(*key)
        out.append(sets[key])
    return out


@contextmanager
def oracle_model(
    family: str,
    rows: list,
    scheme: str,
    padding_side: str = "left",
    model=None,
    own: float | None = None,
    stride: float | None = None,
    layouts: list | None = None,
    **options,
):
    """The stock model of ``family`` (``model``, or a new tiny one) whose rotating layers read :func:`layer_tables`
    for ``rows``; yields the model, undoes everything on exit."""
    model = tiny_model(family) if model is None else model
    per_layer = layer_tables(
        family, rows, scheme, padding_side, model, own=own, stride=stride, layouts=layouts, **options
    )
    handles = []
    for layer, (cos, sin) in zip(rotating_layers(model), per_layer, strict=True):

        def hook(module, args, kwargs, cos=cos, sin=sin):
            assert "position_embeddings" in kwargs, "oracle: the layer takes no position_embeddings keyword"
            return args, {**kwargs, "position_embeddings": (cos, sin)}

        handles.append(layer.register_forward_pre_hook(hook, with_kwargs=True))
    modeling = sys.modules[type(rotating_layers(model)[0].self_attn).__module__]
    # patched models the caller dropped release mmrope-hf's dispatcher when collected: let that happen now, not
    # while the per-head function below is in place (it would then put back a dispatcher that is gone)
    gc.collect()
    original = modeling.apply_rotary_pos_emb
    _, allocation, _ = recipe(scheme, options)
    if allocation[0] == "multi-head":
        kv_heads = geometry(model)[2]
        modeling.apply_rotary_pos_emb = _per_head_apply(family, mhrope_head_axes(kv_heads, allocation[1]))
    try:
        yield model
    finally:
        modeling.apply_rotary_pos_emb = original
        for handle in handles:
            handle.remove()


def oracle_logits(
    family: str, rows: list, inputs: dict, scheme: str, padding_side: str = "left", model=None, **options
):
    """Logits of the stock model (``model``, or a new tiny one) run with the references' cos/sin (see
    :func:`oracle_model`) on ``inputs``."""
    with oracle_model(family, rows, scheme, padding_side, model, **options) as model, torch.no_grad():
        return model(**inputs).logits


def float32_atol(reference: torch.Tensor, k: float = 32.0) -> float:
    """Tolerance between a float32 forward and one fed cos/sin from float64 maths: ``k * eps(float32) * max |logit|``
    (measured: under 8 eps on every family and scheme; the schemes differ from each other by 1e-2 and more)."""
    return k * torch.finfo(torch.float32).eps * max(reference.abs().max().item(), 1.0)
