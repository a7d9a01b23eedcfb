"""Equivalent mutants of `mmrope_hf/positions/rows.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    "x_build_positions__mutmut_21": "`keep.sum(+1)`: keep is (B, L), so dim 1 is dim -1",
}
