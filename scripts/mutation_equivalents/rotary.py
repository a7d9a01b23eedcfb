"""Equivalent mutants of `mmrope_hf/frequencies/rotary.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    "x_probe_difference__mutmut_18": "`x = torch.zeros(2)`: x only gives dtype and device",
    **dict.fromkeys(
        [
            "x_probe_difference__mutmut_41",
            "x_probe_difference__mutmut_42",
            "x_probe_difference__mutmut_46",
            "x_probe_difference__mutmut_49",
            "x_probe_difference__mutmut_50",
            "x_probe_difference__mutmut_54",
            "x_probe_difference__mutmut_55",
        ],
        "how the (1, L) probe is widened for our module: split_position_sets reads (1, L), (1, 1, L),"
        " (3, 1, L) and (4, 1, L) (text row + 3) alike for one position set",
    ),
    "x_probe_difference__mutmut_64": "`zip(..., strict=None)`: both sides are (cos, sin) pairs",
    **dict.fromkeys(
        [
            "xǁMultimodalRotaryEmbeddingǁ__init____mutmut_25",
            "xǁMultimodalRotaryEmbeddingǁ__init____mutmut_62",
            "xǁMultimodalRotaryEmbeddingǁ__init____mutmut_102",
            "xǁMultimodalRotaryEmbeddingǁ__init____mutmut_120",
        ],
        "`register_buffer(..., persistent=None)`: torch tests `if persistent:`, so None is non-persistent as False",
    ),
    **dict.fromkeys(
        [
            "xǁMultimodalRotaryEmbeddingǁ_recompose__mutmut_21",
            "xǁMultimodalRotaryEmbeddingǁ_recompose__mutmut_22",
            "xǁMultimodalRotaryEmbeddingǁ_recompose__mutmut_23",
            "xǁMultimodalRotaryEmbeddingǁ_recompose__mutmut_24",
        ],
        "`.view(1, 1, 1, p).expand(k, 1, b, length, p)`: expand prepends the missing leading dim, the same index",
    ),
    **dict.fromkeys(
        ["xǁMultimodalRotaryEmbeddingǁ__init____mutmut_114", "xǁMultimodalRotaryEmbeddingǁ__init____mutmut_116"],
        "pair_order without `dtype=torch.long`: it is a Sequence[int], from which torch.tensor infers int64",
    ),
    **dict.fromkeys(
        ["xǁMultimodalRotaryEmbeddingǁ__init____mutmut_93", "xǁMultimodalRotaryEmbeddingǁ__init____mutmut_95"],
        "the spatial_from_t mask without `dtype=torch.long`: it holds int(r) Python ints, inferred int64",
    ),
}
