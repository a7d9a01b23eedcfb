"""Equivalent mutants of `mmrope_hf/integrations/transformers/checkpoint.py`:
mutmut name -> why the mutated program behaves as the original. Read by scripts/mutation.py (module = file stem)."""

EQUIVALENT: dict[str, str] = {
    **dict.fromkeys(
        ["x__read_config__mutmut_5", "x__replace_atomically__mutmut_19"],
        "`encoding='UTF-8'`: the same codec as 'utf-8'",
    ),
    **dict.fromkeys(
        ["x__replace_atomically__mutmut_12", "x__replace_atomically__mutmut_15"],
        "the temporary file written in the locale's encoding: its only text is write_scheme's json.dumps with "
        "ensure_ascii (pure ASCII), which every POSIX locale encoding writes as the same bytes",
    ),
}
