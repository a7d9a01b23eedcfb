"""Equivalent mutants of `mmrope_hf/positions/layout.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        ["x_parse_layout__mutmut_15", "x_parse_layout__mutmut_18", "x_parse_layout__mutmut_19"],
        "`zip(row_types, masks[row], strict=...)`: both are one row of (B, L) tensors",
    ),
    **dict.fromkeys(
        ["x_visual_items__mutmut_23", "x_visual_items__mutmut_26", "x_visual_items__mutmut_27"],
        "`zip(grids, intervals, strict=...)` under split_frames: the check above raises unless both are as long",
    ),
}
