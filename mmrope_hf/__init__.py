"""mmrope-hf: swap the multimodal rotary position encoding of Qwen-VL models in Hugging Face transformers.

>>> import mmrope_hf
>>> from mmrope_hf.testing import tiny_model
>>> model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), scheme="mrope-i")
>>> mmrope_hf.is_patched(model)
True
"""

from mmrope_hf.config import MMRopeConfig, available_schemes, resolve_config  # noqa: E402
from mmrope_hf.integrations import peft as _peft  # noqa: E402
from mmrope_hf.integrations.transformers import loading  # noqa: E402
from mmrope_hf.patching import is_patched, patch_info, patch_model, unpatch_model  # noqa: E402
from mmrope_hf.positions.builder import build_position_ids  # noqa: E402
from mmrope_hf.version import __version__  # noqa: E402

loading.install()  # from_pretrained now reads the `mmrope` config key and keyword (see its module)
_peft.install()  # PEFT adapters record their scheme and apply it when loaded (hooks installed when peft is imported)

__all__ = [
    "MMRopeConfig",
    "available_schemes",
    "build_position_ids",
    "is_patched",
    "loading",
    "patch_info",
    "patch_model",
    "resolve_config",
    "unpatch_model",
    "__version__",
]
