"""What vLLM's position contract cannot express is refused before an engine starts, naming the scheme, the reason
and what to do instead; never served as the stock model."""

from __future__ import annotations

import pytest
import torch
import transformers
from vllm_cases import ENGINE

from mmrope_hf import resolve_config
from mmrope_hf.integrations.vllm.serving import integer_positions
from mmrope_hf.testing import tiny_llava_config

REFUSED = [
    ("qwen2_5_vl", "circle", {}, "its positions are fractional"),
    ("qwen3_vl", "circle-age", {}, "its positions are fractional"),
    ("qwen2_5_vl", "v2pe", {}, "its positions are fractional"),
    ("qwen3_vl", "spatial-reset", {"layers": "alternate"}, r"different position sets \['spatial-reset', 'mrope'\]"),
    ("qwen2_5_vl", "videorope", {"temporal_stride": 1.5}, "temporal_stride 1.5 puts frames at fractional"),
    ("qwen2_5_vl", "videorope", {"temporal_stride": None}, "tokens_per_second x second_per_grid_ts"),
]


def _load(checkpoint) -> None:
    from vllm import LLM

    LLM(model=str(checkpoint), **ENGINE)


@pytest.mark.parametrize("family, scheme, options, reason", REFUSED)
def test_refused_at_load(checkpoints, family, scheme, options, reason):
    with pytest.raises(Exception, match=rf"cannot serve scheme '{scheme}'.*{reason}.*Instead, ") as error:
        _load(checkpoints(family, scheme, **options))
    assert "transformers + mmrope-hf" in str(error.value) or "integer temporal_stride" in str(error.value)


def test_videorope_null_stride_is_served_where_videos_advance_by_one():
    """The same null stride is integral on Qwen3-VL (one position per temporal group): no refusal there."""
    from mmrope_hf.integrations.vllm.serving import check_servable

    check_servable(resolve_config("videorope", temporal_stride=None), True, unit_video_interval=True)


def test_3d_scheme_on_llava_is_refused(tmp_path):
    config = tiny_llava_config("llava")
    config.architectures = ["LlavaForConditionalGeneration"]
    config.save_pretrained(tmp_path)
    config = (tmp_path / "config.json").read_text()
    (tmp_path / "config.json").write_text(config.replace("{", '{"mmrope": {"scheme": "mrope-i"},', 1))
    with pytest.raises(Exception, match=r"cannot serve scheme 'mrope-i'.*take 1D positions.*Instead, serve this"):
        _load(tmp_path)


def test_key_on_an_architecture_the_plugin_does_not_serve(tmp_path):
    config = transformers.Qwen2Config(
        vocab_size=256, hidden_size=64, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, architectures=["Qwen2ForCausalLM"],
    )  # fmt: skip
    config.mmrope = {"scheme": "mrope-i"}
    config.save_pretrained(tmp_path)
    with pytest.raises(Exception, match=r"does not serve architecture 'Qwen2ForCausalLM'.*stock model"):
        _load(tmp_path)


def test_fractional_positions_are_never_rounded():
    with pytest.raises(ValueError, match="fractional position 2.5"):
        integer_positions("x", torch.tensor([[0.0, 1.0, 2.5]]), torch.tensor(0.0))
    with pytest.raises(ValueError, match="fractional decode delta 0.5"):
        integer_positions("x", torch.tensor([[0.0, 1.0]]), torch.tensor(0.5))
    positions, delta = integer_positions("x", torch.tensor([[0.0, 3.0]]), torch.tensor(-2.0))
    assert positions.dtype == torch.long and positions.tolist() == [[0, 3]] and delta == -2
