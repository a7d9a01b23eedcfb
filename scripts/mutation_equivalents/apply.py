"""Equivalent mutants of `mmrope_hf/frequencies/apply.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    "x_install_dispatcher__mutmut_10": "`getattr(original, '_mmrope_dispatcher', None)`: a missing marker is falsy "
    "either way",
}
