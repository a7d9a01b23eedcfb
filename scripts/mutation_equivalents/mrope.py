"""Equivalent mutants of `mmrope_hf/positions/mrope.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    "x__grid_rows__mutmut_6": "`torch.meshgrid(..., indexing=None)`: torch's default indexing is 'ij'",
    "x__grid_rows__mutmut_10": "`torch.meshgrid(...)` without `indexing`: torch's default indexing is 'ij'",
}
