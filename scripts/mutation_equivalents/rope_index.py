"""Equivalent mutants of `mmrope_hf/patching/rope_index.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    "x__decoding_positions__mutmut_29": "`mask.shape[+1]` for `mask.shape[-1]`: the mask was just checked to be 2-D",
    "x__decoding_positions__mutmut_40": "`deltas.to(None)`: the stored deltas are on the mask's device already (CPU "
    "here; a model keeps both on its device)",
    "x__decoding_positions__mutmut_62": "`>= new` for `> new`: at equality `[..., -new:]` keeps every column",
}
