"""Equivalent mutants of `mmrope_hf/patches/_tiles.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        ["xǁRowBreaksǁlayout__mutmut_40", "xǁRowBreaksǁlayout__mutmut_41"],
        "the (height, width) of `next(grids, (None, (0, 0)))`'s default: index None raises before they are read",
    ),
}
