"""Checkpoints, requests and runners shared by the serving tests (and benchmarks/serving_vllm.py).

Tiny seeded checkpoints (mmrope_hf.testing) saved with a processor that vLLM loads offline (tokenizer, chat
template, image and video processor), with the text attention's q_proj/k_proj scaled x8 so that positions move
the logits (a random model attends almost uniformly). The reference is transformers + mmrope-hf in the same venv.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from PIL import Image

from mmrope_hf import resolve_config
from mmrope_hf.testing import offline_tokenizer, tiny_model, vision_patch_size
from mmrope_hf.testing.offline import CHAT_TEMPLATE

QK_SCALE = 8.0
MAX_NEW_TOKENS = 3
FPS = 2.0
PROCESSORS = {"qwen2_vl": "Qwen2VLProcessor", "qwen2_5_vl": "Qwen2_5_VLProcessor", "qwen3_vl": "Qwen3VLProcessor"}
IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"
VIDEO = "<|vision_start|><|video_pad|><|vision_end|>"
ENGINE = dict(
    dtype="float32",
    enforce_eager=True,
    max_model_len=1024,
    max_num_seqs=4,
    limit_mm_per_prompt={"image": 2, "video": 1},
    seed=0,
)


def processor(family: str) -> Any:
    """The family's processor with real image and video processors (one normalisation for both: vLLM 0.32
    normalises Qwen3-VL videos with the image processor's mean/std)."""
    patch = vision_patch_size(family)
    factor = 2 * patch
    sizes = dict(patch_size=patch, merge_size=2, temporal_patch_size=2)
    norm = dict(image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    pixels = dict(min_pixels=4 * factor**2, max_pixels=64 * factor**2)
    image = transformers.Qwen2VLImageProcessor(**pixels, **sizes, **norm)
    if family.startswith("qwen3"):
        video = transformers.Qwen3VLVideoProcessor(
            size={"shortest_edge": 4 * factor**2, "longest_edge": 512 * factor**2}, fps=FPS, **sizes, **norm
        )
    else:
        video = transformers.Qwen2VLVideoProcessor(**pixels, **sizes, **norm)
    cls = getattr(transformers, PROCESSORS[family.replace("_moe", "")])
    return cls(image_processor=image, tokenizer=offline_tokenizer(), video_processor=video, chat_template=CHAT_TEMPLATE)


def build_checkpoint(family: str, out: Path) -> Path:
    """A stock tiny checkpoint of ``family`` with its processor, q/k of the text attention scaled."""
    model = tiny_model(family)
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj):
                proj.weight.mul_(QK_SCALE)
                if proj.bias is not None:
                    proj.bias.mul_(QK_SCALE)
    model.save_pretrained(out)
    processor(family).save_pretrained(out)
    return out


def with_scheme(base: Path, out: Path, scheme: str | None, **options: Any) -> Path:
    """``base`` (files linked) with ``scheme`` in its config.json's ``mmrope`` key (``None``: a stock copy)."""
    out.mkdir(parents=True, exist_ok=True)
    for f in base.iterdir():
        if f.name != "config.json" and not (out / f.name).exists():
            os.symlink(f.resolve(), out / f.name)
    config = json.loads((base / "config.json").read_text())
    if scheme is not None:
        config["mmrope"] = resolve_config(scheme, **options).to_dict()
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def image(seed: int, width: int = 112, height: int = 84) -> Image.Image:
    cells = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(cells, "RGB").resize((width, height), Image.BILINEAR)


def video(seed: int, frames: int = 4) -> np.ndarray:
    return np.stack([np.asarray(image(seed + i)) for i in range(frames)])


def video_metadata(frames: np.ndarray) -> dict[str, Any]:
    n = len(frames)
    return {"fps": FPS, "duration": n / FPS, "total_num_frames": n, "frames_indices": list(range(n))}


def chat(text: str) -> str:
    return f"<|im_start|>user\n{text}<|im_end|>\n<|im_start|>assistant\n"


REQUESTS: dict[str, tuple[str, dict[str, list]]] = {
    "text": (chat("describe the image"), {}),
    "image": (chat(IMAGE + "describe this image"), {"image": [image(0)]}),
    "two_images": (chat(IMAGE + "what is in " + IMAGE + "the image"), {"image": [image(1, 84, 112), image(2)]}),
    "video": (chat(VIDEO + "describe this video"), {"video": [video(3)]}),
}
VISUAL = ("image", "two_images", "video")


def vllm_prompt(text: str, media: dict[str, list]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    if media.get("image"):
        data["image"] = media["image"] if len(media["image"]) > 1 else media["image"][0]
    if media.get("video"):  # the same fps on both sides, no frame sampling
        clip = media["video"][0]
        data["video"] = (clip, {**video_metadata(clip), "do_sample_frames": False, "video_backend": "opencv"})
    return {"prompt": text, "multi_modal_data": data} if data else {"prompt": text}


def run_vllm(llm: Any) -> dict[str, dict[str, list]]:
    """Prompt ids, prompt logprobs, greedy tokens and their logprobs of every request, in one batch."""
    from vllm import SamplingParams

    params = SamplingParams(max_tokens=MAX_NEW_TOKENS, temperature=0.0, prompt_logprobs=0, logprobs=0, ignore_eos=True)
    outputs = llm.generate([vllm_prompt(*r) for r in REQUESTS.values()], params, use_tqdm=False)
    results = {}
    for name, out in zip(REQUESTS, outputs, strict=True):
        ids, gen = list(out.prompt_token_ids), out.outputs[0]
        results[name] = {
            "ids": ids,
            "prompt_lp": [d[t].logprob for d, t in zip(out.prompt_logprobs[1:], ids[1:], strict=True)],
            "tokens": list(gen.token_ids),
            "gen_lp": [d[t].logprob for d, t in zip(gen.logprobs, gen.token_ids, strict=True)],
        }
    return results


def run_transformers(checkpoint: Path) -> dict[str, dict[str, list]]:
    """The same as :func:`run_vllm` from transformers, loading the checkpoint as mmrope-hf does (its key)."""
    import mmrope_hf

    model = transformers.AutoModelForImageTextToText.from_pretrained(str(checkpoint), dtype=torch.float32).eval()
    assert mmrope_hf.is_patched(model) == ("mmrope" in json.loads((checkpoint / "config.json").read_text()))
    model.generation_config.eos_token_id = None  # as vLLM's ignore_eos
    proc = transformers.AutoProcessor.from_pretrained(str(checkpoint))
    results = {}
    for name, (text, media) in REQUESTS.items():
        kwargs: dict[str, Any] = {}
        if media.get("image"):
            kwargs["images"] = media["image"]
        if media.get("video"):
            kwargs.update(
                videos=media["video"],
                video_metadata=[video_metadata(v) for v in media["video"]],
                do_sample_frames=False,
            )
        inputs = proc(text=[text], return_tensors="pt", **kwargs)
        ids = inputs["input_ids"][0]
        with torch.no_grad():
            logprobs = torch.log_softmax(model(**inputs).logits[0].float(), -1)
            gen = model.generate(
                **inputs,
                max_new_tokens=MAX_NEW_TOKENS,
                do_sample=False,
                output_logits=True,
                return_dict_in_generate=True,
            )
        tokens = gen.sequences[0, len(ids) :].tolist()
        results[name] = {
            "ids": ids.tolist(),
            "prompt_lp": logprobs[:-1].gather(-1, ids[1:, None])[:, 0].tolist(),
            "tokens": tokens,
            "gen_lp": [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(gen.logits, tokens, strict=True)],
        }
    return results


def max_diff(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b), (len(a), len(b))
    return max((abs(x - y) for x, y in zip(a, b, strict=True)), default=0.0)
