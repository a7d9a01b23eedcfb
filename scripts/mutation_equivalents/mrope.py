"""Equivalent mutants of `mmrope_hf/positions/mrope.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    "x__grid_rows__mutmut_6": "`torch.meshgrid(..., indexing=None)`: torch's default indexing is 'ij'",
    "x__grid_rows__mutmut_10": "`torch.meshgrid(...)` without `indexing`: torch's default indexing is 'ij'",
    **dict.fromkeys(
        ["x__batch_extent__mutmut_1", "x__batch_extent__mutmut_2", "x__batch_extent__mutmut_3"],
        "another constant memo key for the extent: written and read only here (mrope and spatial-reset share it, "
        "as the original does: the extent does not depend on reset); no other design uses None or these strings",
    ),
    "x__batch_extent__mutmut_4": "memo key ('mrope-extent', id(None)): the memo belongs to one build, and every "
    "design of a build reads the same options object, so the key is one constant per build",
    **dict.fromkeys(
        ["x__mrope_row__mutmut_4", "x__mrope_row__mutmut_26"],
        "top = -2 at the start / max(top, pos - 2) after text: pos never decreases, so what text adds to top "
        "(pos - 1 or pos - 2, and the start's -1 or -2) stays below the final pos, and the result max(pos, top + 1) "
        "is the same; only a block's pos + extent can pass it",
    ),
    "x_mrope__mutmut_3": "`reset=None` for `reset=False`: _mrope_row only tests reset's truth value",
}
