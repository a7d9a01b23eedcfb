"""The offline vocabulary shared by every tiny model: 256 ids with the Qwen-VL special tokens, a word-level tokenizer,
a chat template, and seeded synthetic images. No network."""

from __future__ import annotations

import numpy as np
import transformers
from PIL import Image

# Token ids shared by every family (vocab 256). Random text ids are drawn from 2..199.
PAD, EOS = 0, 1
TEXT_IDS = (2, 200)
VISION_START, VISION_END, IMAGE_TOKEN, VIDEO_TOKEN = 250, 251, 252, 253
UNK, BOS = 254, 255
VOCAB_SIZE = 256


TINY_TEXT = dict(
    vocab_size=VOCAB_SIZE,
    hidden_size=256,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=32,
    max_position_embeddings=4096,
    rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    pad_token_id=PAD,
    bos_token_id=BOS,
    eos_token_id=EOS,
    tie_word_embeddings=False,
)
"""The tiny 1D-RoPE language model of the LLaVA and tile families (2 layers, 8 heads / 4 KV heads, head_dim 32)."""
SPECIAL_TOKENS = {
    "<|endoftext|>": PAD,
    "<|im_end|>": EOS,
    "<|vision_start|>": VISION_START,
    "<|vision_end|>": VISION_END,
    "<|image_pad|>": IMAGE_TOKEN,
    "<|video_pad|>": VIDEO_TOKEN,
    "<unk>": UNK,
    "<|im_start|>": BOS,
}
_WORDS = ("user", "assistant", "system", "describe", "the", "a", "this", "image", "video", "what", "is", "in", "of")

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def offline_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """Word-level tokenizer over the 256-id vocab with the Qwen-VL special tokens; left padding."""
    from tokenizers import AddedToken, Tokenizer, models, pre_tokenizers

    names = {i: f"w{i}" for i in range(VOCAB_SIZE)}
    names.update({TEXT_IDS[0] + k: word for k, word in enumerate(_WORDS)})
    names.update({i: token for token, i in SPECIAL_TOKENS.items()})
    tok = Tokenizer(models.WordLevel(vocab={t: i for i, t in names.items()}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<|endoftext|>",
        eos_token="<|im_end|>",
        bos_token="<|im_start|>",
        unk_token="<unk>",
        padding_side="left",
    )


def synthetic_image(width: int, height: int, seed: int = 0) -> Image.Image:
    """Seeded RGB image: a random 4x4 colour grid, bilinearly upsampled to ``width`` x ``height``."""
    cells = np.random.default_rng(seed).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    return Image.fromarray(cells, "RGB").resize((width, height), Image.Resampling.BILINEAR)
