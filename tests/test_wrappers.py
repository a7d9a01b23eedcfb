"""patch_model, unpatch_model, is_patched and patch_info see through training wrappers (PEFT, DDP, FSDP2,
torch.compile, accelerate), in both orders: patch through the wrapper, or wrap a patched model.

The expectation is independent of the wrappers: the logits of the same seeded model patched (or stock) without one.
DDP and FSDP2 run in a one-process gloo world here; tests/test_ddp.py trains them with two processes.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from accelerate import Accelerator
from conftest import inputs_for, logits
from peft import LoraConfig, get_peft_model
from torch import nn
from torch.distributed.fsdp import fully_shard

import mmrope_hf
from mmrope_hf.testing import tiny_model

FAMILY, SCHEME = "qwen2_5_vl", "mrope-i"


@pytest.fixture(scope="module")
def one_process_world(tmp_path_factory):
    """A gloo world of one process, for DDP and FSDP2 (left alone if a test run already has one)."""
    if dist.is_initialized():
        yield
        return
    store = tmp_path_factory.mktemp("gloo") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def lora(model: nn.Module) -> nn.Module:
    return get_peft_model(model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"]))  # B = 0: same logits


def fsdp2(model: nn.Module) -> nn.Module:
    for layer in model.model.language_model.layers:
        fully_shard(layer)
    return fully_shard(model)  # the same object, its class changed in place


WRAPPERS = {
    "peft": lora,
    "peft-tuner": lambda model: lora(model).base_model,  # the LoraModel inside a PeftModel
    "ddp": nn.parallel.DistributedDataParallel,
    "fsdp2": fsdp2,
    "compile": lambda model: torch.compile(model, backend="eager"),
    "accelerate": lambda model: Accelerator(cpu=True).prepare(model),
    "compiled-ddp-peft": lambda model: torch.compile(nn.parallel.DistributedDataParallel(lora(model))),
}


@pytest.fixture(scope="module")
def expected():
    """Logits of the seeded tiny model, stock and patched, and the patch_info of the patched one."""
    inputs = inputs_for(FAMILY, "images")
    model = tiny_model(FAMILY)
    stock = logits(model, inputs)
    mmrope_hf.patch_model(model, SCHEME)
    return inputs, stock, logits(model, inputs), mmrope_hf.patch_info(model)


def wrapped_logits(wrapper: nn.Module, inputs: dict) -> torch.Tensor:
    """The wrapper's logits; a compiled model's through the model it compiled (the patch is what is tested here,
    compiling the forward is tests/test_reliability.py's)."""
    if isinstance(wrapper, torch._dynamo.eval_frame.OptimizedModule):
        wrapper = wrapper._orig_mod
    return logits(wrapper, inputs)


@pytest.mark.parametrize("order", ["wrap-then-patch", "patch-then-wrap"])
@pytest.mark.parametrize("name", list(WRAPPERS))
def test_functions_see_through_the_wrapper(name, order, expected, one_process_world):
    inputs, stock, patched, info = expected
    model = tiny_model(FAMILY)
    if order == "wrap-then-patch":
        wrapper = WRAPPERS[name](model)
        assert not mmrope_hf.is_patched(wrapper) and mmrope_hf.patch_info(wrapper) is None
        assert mmrope_hf.patch_model(wrapper, SCHEME) is wrapper
    else:
        wrapper = WRAPPERS[name](mmrope_hf.patch_model(model, SCHEME))
    assert mmrope_hf.is_patched(wrapper) and mmrope_hf.is_patched(model)
    assert mmrope_hf.patch_info(wrapper) == info
    torch.testing.assert_close(wrapped_logits(wrapper, inputs), patched, atol=1e-6, rtol=0)
    assert mmrope_hf.unpatch_model(wrapper) is wrapper
    assert not mmrope_hf.is_patched(wrapper) and not mmrope_hf.is_patched(model)
    torch.testing.assert_close(wrapped_logits(wrapper, inputs), stock, atol=1e-6, rtol=0)


def test_peft_merge_and_unload_keeps_the_scheme(expected):
    inputs, stock, _, info = expected
    peft_model = get_peft_model(tiny_model(FAMILY), LoraConfig(r=4, target_modules=["q_proj"], init_lora_weights=False))
    mmrope_hf.patch_model(peft_model, SCHEME)
    before = logits(peft_model, inputs)  # non-zero LoRA B: other logits than the base
    merged = peft_model.merge_and_unload()
    assert mmrope_hf.patch_info(merged) == info and mmrope_hf.patch_info(peft_model) == info
    torch.testing.assert_close(logits(merged, inputs), before, atol=1e-5, rtol=0)
    mmrope_hf.unpatch_model(merged)
    assert not torch.allclose(logits(merged, inputs), before, atol=1e-3)  # the scheme, not the merge, made them


class Holder(nn.Module):
    """A wrapper mmrope-hf does not know."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model


@pytest.mark.parametrize("function", ["patch_model", "unpatch_model", "is_patched", "patch_info"])
def test_an_unknown_wrapper_is_refused_with_what_to_pass(function):
    holder = Holder(mmrope_hf.patch_model(tiny_model(FAMILY), SCHEME))
    with pytest.raises(TypeError, match=r"does not see through Holder: pass .*`\.inner` \(Qwen2_5_VLForConditional"):
        getattr(mmrope_hf, function)(holder)
    assert mmrope_hf.is_patched(holder.inner)


def test_a_module_without_a_transformers_model_is_not_patched():
    assert not mmrope_hf.is_patched(nn.Linear(2, 2))
    with pytest.raises(TypeError, match="does not support model type None"):
        mmrope_hf.patch_model(nn.Linear(2, 2))
