"""Equivalent mutants of `mmrope_hf/frequencies/rotary.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        [
            "x_probe_difference__mutmut_10",
            "x_probe_difference__mutmut_12",
            "x_probe_difference__mutmut_15",
            "x_probe_difference__mutmut_17",
        ],
        "`device=None` or no device for the probe tensors: the default device, which is the stock "
        "module's here (CPU only)",
    ),
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
}
