"""Equivalent mutants of `mmrope_hf/positions/batch.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        ["x__serial_torch__mutmut_8", "x__serial_torch__mutmut_10"],
        "`np.empty(n, dtype=None)` or no dtype: numpy's default dtype is float64",
    ),
    **dict.fromkeys(
        ["xǁNumpyOpsǁarange__mutmut_2", "xǁNumpyOpsǁarange__mutmut_4"],
        "`np.arange(n)` without dtype: numpy 2's default integer is int64",
    ),
    **dict.fromkeys(
        ["xǁNumpyOpsǁcast__mutmut_2", "xǁNumpyOpsǁcast__mutmut_4", "xǁNumpyOpsǁcast__mutmut_5"],
        "`astype(copy=None/True)`: only whether a same-dtype cast copies; no caller writes into a cast "
        "(the builder copies `lead` explicitly when the dtypes agree)",
    ),
    "xǁNumpyOpsǁcumsum__mutmut_22": "`_GRAIN // max(2, L)`: differs only for L = 1 (half the rows per torch call), "
    "the same sums, still under the grain",
    "xǁNumpyOpsǁstack__mutmut_2": "`np.stack(arrays, 0)` for `np.array(arrays)`: the same array for equal-shape "
    "1-D inputs (np.array is only cheaper)",
    **dict.fromkeys(
        ["xǁTorchOpsǁasarray__mutmut_4", "xǁTorchOpsǁasarray__mutmut_9"],
        "`non_blocking=False`: only whether a host-to-device copy may overlap; the values are the same",
    ),
    "xǁTorchOpsǁrepeat__mutmut_3": "`asarray(counts, None)`: counts are host int64 tables (grid sizes, row "
    "widths), so as_tensor keeps int64",
    **dict.fromkeys(
        ["x__grid_table__mutmut_24", "x__grid_table__mutmut_25"],
        "`h / merge` (or w) in an int64 array: the guard above has made h and w divisible by merge, so the float "
        "quotient is the integer one",
    ),
    **dict.fromkeys(
        ["x__block_table__mutmut_22", "x__block_table__mutmut_23"],
        "`h / merge` (or w) in the token count: the grid table has checked divisibility, so the count compares "
        "equal as a float",
    ),
    **dict.fromkeys(
        ["x__grid_table__mutmut_27", "x__host_arrays__mutmut_15", "x__host_arrays__mutmut_21"],
        "`reshape(-2...)`: numpy reads any negative size as the one unknown dimension, like -1",
    ),
    "x__grid_table__mutmut_31": "`grid.prod(+1)`: grid is (N, 3), so axis 1 is axis -1",
    **dict.fromkeys(
        ["x__grid_table__mutmut_35", "x__grid_table__mutmut_37"],
        "the host interval table as float64: block_tables casts it to float32 (`asarray(interval, f32)`) before "
        "any design reads it",
    ),
    **dict.fromkeys(
        ["x__block_table__mutmut_9", "x__block_table__mutmut_27", "x__block_table__mutmut_28"],
        "`used` is counted but never read",
    ),
    **dict.fromkeys(
        ["x__block_table__mutmut_37", "x__block_table__mutmut_40"],
        "the index of a batch without visual tokens (no grids: a grid of no token is rejected): with no block the "
        "builder never reads tokens.index, first or last",
    ),
    "x__block_table__mutmut_42": "`xp.concat` of a single index array: the same values (a copy)",
    **dict.fromkeys(
        ["x__block_table__mutmut_50", "x__block_table__mutmut_54", "x__block_table__mutmut_66"],
        "`asarray(offset/ends/size, None)`: host int64 tables, which as_tensor / np.asarray keep int64",
    ),
    **dict.fromkeys(
        ["x_block_tables__mutmut_28", "x_block_tables__mutmut_32", "x_block_tables__mutmut_33"],
        "`rho // row_h` also when every block has one temporal group: rho < H there, so it is the zeros of the "
        "shortcut",
    ),
    **dict.fromkeys(
        ["x_block_tables__mutmut_92", "x_block_tables__mutmut_93"],
        "`Blocks.temporal` always true: it only lets designs skip their temporal terms, which are g * step = 0 "
        "when every g is 0 (and nothing reads it without blocks)",
    ),
    "x_block_tables__mutmut_16": "`total = 1` for a batch without grids: numpy's repeat ignores it, torch's "
    "repeat_interleave gives the same empty tables, and no design reads the tokens of a batch without blocks",
    "x_block_tables__mutmut_50": "`asarray(table, None)`: the table stacks int64 columns (np.arange's row_block), "
    "so it is int64 already",
    "x__host_arrays__mutmut_10": "keeps an all-ones mask instead of dropping it: the masked arithmetic then gives "
    "the same positions (dropping it only saves work)",
    "x__build__mutmut_155": "`repeat(..., total=None)`: numpy ignores it; torch's output_size only spares a "
    "device sync, same values",
    "x__build__mutmut_162": "`cast(top, None)`: numpy makes it float64 (exact for these integers), torch keeps it; "
    "the deltas are cast to the result dtype at the end",
    "x__build__mutmut_44": "`full(batch, length, None)`: an int fill gives int64 in numpy and torch",
    "x__build__mutmut_54": "`cast(valid, None)`: numpy float64 / torch bool 0 and 1, assigned into the int64 lead",
    "x__build__mutmut_97": "`cast(lead, None)` of a float design without blocks: numpy float64 as before; torch "
    "int64 counts, whose exact sums are written into the float32 positions and cast at the end",
    "xǁNumpyOpsǁowned__mutmut_9": "`order='c'`: numpy reads the order code case-insensitively",
}
