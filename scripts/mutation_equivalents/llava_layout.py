"""Equivalent mutants of `mmrope_hf/patches/_llava_layout.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    "xǁLlavaGeometryǁhires_grid__mutmut_19": "`torch.empty(1, H, W)` for `(0, H, W)`: only unpad_image's crop of "
    "the last two dims is read (`.shape[1:]`), never the channel count or data",
    "xǁLlavaGeometryǁhires_grid__mutmut_33": "`strip('XXanyres_max_XX')`: str.strip takes a set of characters; 'X' "
    "adds nothing that can border the digits of 'anyres_max_<n>'",
    **dict.fromkeys(
        ["xǁLlavaGeometryǁitems__mutmut_99", "xǁLlavaGeometryǁitems__mutmut_102", "xǁLlavaGeometryǁitems__mutmut_103"],
        "`zip(sizes, patched, strict=...)`: patched is built with one entry per size ([True] * len(sizes), or from "
        "batch_num_images after its sum was checked against len(sizes))",
    ),
    **dict.fromkeys(
        ["x_placeholder_kinds__mutmut_6", "x_placeholder_kinds__mutmut_8"],
        "no mask: an int64 all-ones `keep` instead of bool: `(ids == token) & keep` is then int64 and `.any()` "
        "and `if kept` read it the same",
    ),
}
