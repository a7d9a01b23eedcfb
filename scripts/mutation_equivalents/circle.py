"""Equivalent mutants of `mmrope_hf/positions/circle.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        [
            "x__offsets__mutmut_14",
            "x__offsets__mutmut_19",
            "x__offsets__mutmut_25",
            "x__offsets__mutmut_29",
            "x__offsets__mutmut_98",
        ],
        "`xp.cast(..., None)` of small integer grid indices: they stay integers, and the arithmetic "
        "they meet (float64 operands, halves) gives the same float64 values",
    ),
    **dict.fromkeys(
        [
            "x__offsets__mutmut_78",
            "x__offsets__mutmut_79",
            "x__offsets__mutmut_89",
            "x__offsets__mutmut_90",
            "x__offsets__mutmut_91",
        ],
        "the angle-span guard: a block's span is 0 only when every angle is 0 (one token, or one "
        "uncentred row), else at least pi/2, so > 0, >= 0, > 1 and the unused divisor agree",
    ),
    "x__ring__mutmut_54": "the per-row angle-span guard `span > 1` for `span > 0`: the span is 0 (one token, one "
    "uncentred row) or at least pi/2 > 1 (see x__offsets__mutmut_78)",
    **dict.fromkeys(
        ["x__ring__mutmut_4", "x__ring__mutmut_7"],
        "`torch.meshgrid(...)` without `indexing` / `indexing=None`: torch's default indexing is 'ij'",
    ),
    **dict.fromkeys(
        ["x__batch_offsets__mutmut_1", "x__batch_offsets__mutmut_2", "x__batch_offsets__mutmut_3"],
        "another constant memo key for the offsets: the key is written and read only here, and no other design "
        "uses None, 'XXcircleXX' or 'CIRCLE' (the memo holds ('mrope-extent', id) and ('circle-advance', id))",
    ),
    "x__batch_offsets__mutmut_4": "memo key ('circle', id(None)) for ('circle', id(options)): the memo belongs to "
    "one build, and every design of a build reads the same options object, so the key is one constant per build",
    **dict.fromkeys(
        [
            "x__host_offsets__mutmut_11",
            "x__host_offsets__mutmut_14",
            "x__host_offsets__mutmut_17",
        ],
        "`zip(grid[:, 1], grid[:, 2], strict=...)`: two columns of one (N, 3) array, always the same length",
    ),
    **dict.fromkeys(
        [
            "x__host_offsets__mutmut_59",
            "x__host_offsets__mutmut_62",
            "x__host_offsets__mutmut_63",
        ],
        "`zip(missing, fresh, strict=...)`: fresh is np.split into len(missing) parts (one block per missing shape)",
    ),
    **dict.fromkeys(
        [
            "x__host_offsets__mutmut_93",
            "x__host_offsets__mutmut_96",
            "x__host_offsets__mutmut_97",
        ],
        "`zip(parts, blocks.frames, strict=...)`: one ring per block and one frame count per block",
    ),
    **dict.fromkeys(
        ["x__host_offsets__mutmut_24", "x__host_offsets__mutmut_26"],
        "`np.array([(1, h, w), ...])` without dtype=int64: numpy >= 2 (pinned) makes Python ints int64 on every "
        "platform",
    ),
    **dict.fromkeys(
        ["x__host_offsets__mutmut_31", "x__host_offsets__mutmut_36", "x__host_offsets__mutmut_38"],
        "the interval of the (1, H, W) blocks the rings are computed from (None, float64 ones): a one-frame block "
        "has no temporal groups, so _offsets never reads blocks.interval for them (block_tables only stores it)",
    ),
    **dict.fromkeys(
        ["x__host_offsets__mutmut_83", "x__host_offsets__mutmut_89"],
        "`np.tile(r, (1, 1))` for a one-frame block too: a copy of r with the same values; it is concatenated "
        "and shifted into a new array anyway",
    ),
    "x__host_offsets__mutmut_99": "`np.concatenate` of a single ring instead of the ring itself: a copy with the "
    "same values, only read (start + offsets makes a new array)",
    "x__host_offsets__mutmut_113": "`interval.astype(None)`: numpy reads dtype None as float64, the original dtype",
    "x__offsets__mutmut_207": "`interval.to(None)` keeps float32 (torch path; the host path never reaches the "
    "temporal lift of _offsets): g (float64) * float32 stride promotes to float64 with the same exact values",
    "x__offsets__mutmut_220": "`tokens.g.to(None)` keeps int64: small int64 group indices * float64 stride give "
    "the same float64 values as their float64 cast",
    **dict.fromkeys(
        ["x_circle__mutmut_45", "x_circle__mutmut_48"],
        "the empty row's zeros(3, 0) made without dtype=float64: it holds no value and is cast to float32 on return",
    ),
}
