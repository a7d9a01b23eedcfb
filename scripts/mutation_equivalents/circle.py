"""Equivalent mutants of `mmrope_hf/positions/circle.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        [
            "x__offsets__mutmut_14",
            "x__offsets__mutmut_19",
            "x__offsets__mutmut_25",
            "x__offsets__mutmut_29",
            "x__offsets__mutmut_98",
        ],
        "`xp.cast(..., None)` of small integer grid indices: they stay integers, and the arithmetic "
        "they meet (float64 operands, halves) gives the same float64 values",
    ),
    **dict.fromkeys(
        [
            "x__offsets__mutmut_78",
            "x__offsets__mutmut_79",
            "x__offsets__mutmut_89",
            "x__offsets__mutmut_90",
            "x__offsets__mutmut_91",
        ],
        "the angle-span guard: a block's span is 0 only when every angle is 0 (one token, or one "
        "uncentred row), else at least pi/2, so > 0, >= 0, > 1 and the unused divisor agree",
    ),
}
