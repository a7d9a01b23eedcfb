"""Equivalent mutants of `mmrope_hf/positions/builder.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        [
            "x_positions_for__mutmut_4",
            "x_positions_for__mutmut_5",
            "x_positions_for__mutmut_6",
            "x_positions_for__mutmut_7",
        ],
        "skips the loop-free batch path: the per-row path it falls back to gives the same positions "
        "(the batch path only saves time)",
    ),
    **dict.fromkeys(
        ["x_positions_for__mutmut_36", "x_positions_for__mutmut_42"],
        "the per-row path's `device=None` (given or by default): the positions are built on the CPU, the device of "
        "mm_token_type_ids here (the tests run on the CPU only; on an accelerator this would matter)",
    ),
    "x_text_positions__mutmut_5": "`cumsum(+1)` on the (B, L) masks it is given is `cumsum(-1)`",
    "x_build_position_ids__mutmut_66": "`mm_token_type_ids.to(None)`: already on input_ids' device (CPU here)",
}
