"""A checkpoint whose config selects the scheme: save a patched model, load it back patched, override, opt out.

Offline: the model is a tiny random Qwen2.5-VL saved to a temporary directory.

    python examples/load_checkpoint.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText

import mmrope_hf  # installs the from_pretrained hook that reads the `mmrope` config key
from mmrope_hf.testing import build_inputs, tiny_model


def main() -> None:
    inputs = build_inputs("qwen2_5_vl", [[3, ("image", 1, 8, 8), 4]])
    with tempfile.TemporaryDirectory() as path:
        model = mmrope_hf.patch_model(tiny_model("qwen2_5_vl"), scheme="circle", radius=8)
        model.save_pretrained(path)
        key = json.loads((Path(path) / "config.json").read_text())["mmrope"]
        print(f"config.json holds: scheme={key['scheme']!r}, layers={key['layers']!r}, radius={key['radius']}")

        loaded = AutoModelForImageTextToText.from_pretrained(path, attn_implementation="eager")  # as saved
        with torch.no_grad():
            same = torch.equal(loaded(**inputs).logits, model(**inputs).logits)
        print(
            f"loaded: {mmrope_hf.patch_info(loaded)['scheme']} (radius {mmrope_hf.patch_info(loaded)['radius']}), "
            f"logits identical to the saved model: {same}"
        )

        override = AutoModelForImageTextToText.from_pretrained(path, mmrope="mrope-i")
        print(f"mmrope='mrope-i' overrides the checkpoint: {mmrope_hf.patch_info(override)['scheme']}")

        stock = AutoModelForImageTextToText.from_pretrained(path, mmrope=None)
        print(f"mmrope=None loads the stock model: is_patched = {mmrope_hf.is_patched(stock)}")


if __name__ == "__main__":
    main()
