"""Equivalent mutants of `mmrope_hf/frequencies/allocation.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    "x_interleaved_pair_axes__mutmut_9": (
        "`i <= 3*s_h` for `i < 3*s_h`: they differ only at i = 3*s_h, where i % 3 == 0, not 1"
    ),
    "x_interleaved_pair_axes__mutmut_19": (
        "`i <= 3*s_w` for `i < 3*s_w`: they differ only at i = 3*s_w, where i % 3 == 0, not 2"
    ),
    **dict.fromkeys(
        ["xǁScaledBaseAllocationǁplan__mutmut_4", "xǁVideoRoPEAllocationǁplan__mutmut_15"],
        "`num_kv_heads=None` to PairAllocation.plan, which never reads it",
    ),
    **dict.fromkeys(
        ["xǁScaledBaseAllocationǁplan__mutmut_6", "xǁVideoRoPEAllocationǁplan__mutmut_17"],
        "`options=None` to PairAllocation.plan, which never reads it",
    ),
    "xǁVideoRoPEAllocationǁplan__mutmut_52": "`options.get('temporal_nope', None)`: missing is falsy either way",
    "xǁVideoRoPEAllocationǁplan__mutmut_54": "`options.get('temporal_nope')`: missing is falsy either way",
    "xǁHeadAllocationǁplan__mutmut_1": "default `strict=False`: the multi-head plan never reads `strict` (it has "
    "no native section to take as is; the interface keeps the argument for the per-pair allocations)",
}
