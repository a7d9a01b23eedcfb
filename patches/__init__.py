"""Model-family adapters (installed as ``mmrope_hf.patches``). Importing this package registers them."""

from . import llava, qwen2_5_vl, qwen2_vl, qwen3_vl  # noqa: F401
