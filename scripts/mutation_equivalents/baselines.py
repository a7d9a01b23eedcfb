"""Equivalent mutants of `mmrope_hf/positions/baselines.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

_MESHGRID = "`torch.meshgrid` without `indexing` uses 'ij', the value passed (it only warns once per process)"
_FLOAT32_ZEROS = "the empty row's zeros made float32 instead of float64: the row is cast to float32 just after"

EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        [
            "x__diagonal_row__mutmut_46",
            "x__diagonal_row__mutmut_50",
            "x_modality_interval__mutmut_23",
            "x_modality_interval__mutmut_27",
            "x_text_spatial_reset__mutmut_24",
            "x_text_spatial_reset__mutmut_28",
        ],
        _MESHGRID,
    ),
    **dict.fromkeys(
        ["x_modality_interval__mutmut_6", "x_text_spatial_reset__mutmut_7"],
        "`_text(int position, n, None)`: `torch.arange(n)` is int64 already, and an int start keeps it int64",
    ),
    "x__diagonal_row__mutmut_6": "text as `float start + int64 arange` (float32) instead of float64, then cast to "
    "float32: the same float32 values (the text run's positions are start + k, k an integer)",
    **dict.fromkeys(["x__diagonal_row__mutmut_80", "x__diagonal_row__mutmut_83"], _FLOAT32_ZEROS),
    **dict.fromkeys(["x_v2pe__mutmut_63", "x_v2pe__mutmut_66"], _FLOAT32_ZEROS),
    **dict.fromkeys(
        ["x__text__mutmut_7", "x__text__mutmut_9"],
        "`torch.arange(count)` is int64: the int64 callers get the same tensor, the float64 ones the float32 "
        "values that their row is cast to anyway (text positions are start + k with k an integer; V2PE's start is "
        "an integer)",
    ),
    "x_v2pe__mutmut_16": "text from `last + 1` as float32 instead of float64: `last + 1` is an integer (text "
    "resumes at ceil + 1), exact in float32 below 2**24, and the row is cast to float32 anyway",
}
