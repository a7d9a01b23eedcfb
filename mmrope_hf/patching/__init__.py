"""Install and undo a scheme on one model instance: :func:`patch_model`, :func:`unpatch_model`, :func:`is_patched`,
:func:`patch_info`."""

from mmrope_hf.patching.api import is_patched, patch_info, patch_model, unpatch_model

__all__ = ["is_patched", "patch_info", "patch_model", "unpatch_model"]
