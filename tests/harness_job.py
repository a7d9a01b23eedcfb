"""An evaluation harness's view, run by tests/test_autoload.py in a fresh interpreter: torch and transformers only.

It never imports mmrope_hf. ``python harness_job.py JOB.json`` reads the inputs (a ``torch.save``d dict) and, for
every load of the job, loads the model with the class it names (an Auto class, a concrete class, or ``pipeline``
for ``pipeline("image-text-to-text")``), runs one forward and a greedy ``generate``, optionally saves the model,
and writes ``{name: {"logits", "tokens"}}``, which modules the interpreter started with and the file of
``mmrope_hf`` if something imported it, with ``torch.save``.
"""

import json
import sys

import torch
import transformers

STARTED_WITH = {"mmrope_hf": "mmrope_hf" in sys.modules, "_mmrope_hf_autoload": "_mmrope_hf_autoload" in sys.modules}


def no_video_processor(checkpoint: str) -> transformers.ProcessorMixin:
    """The checkpoint's Qwen2.5-VL processor without its video processor (that one needs torchvision)."""
    cls = type(
        "ImageOnlyProcessor",
        (transformers.Qwen2_5_VLProcessor,),
        {"get_attributes": classmethod(lambda cls: ["image_processor", "tokenizer"])},
    )
    return cls(
        image_processor=transformers.AutoImageProcessor.from_pretrained(checkpoint),
        tokenizer=transformers.AutoTokenizer.from_pretrained(checkpoint),
    )


def load(spec: dict) -> torch.nn.Module:
    if spec["class"] == "pipeline":
        processor = no_video_processor(spec["path"])
        kwargs = {"model_kwargs": {"attn_implementation": "eager"}}
        return transformers.pipeline("image-text-to-text", model=spec["path"], processor=processor, **kwargs).model
    cls = getattr(transformers, spec["class"])
    return cls.from_pretrained(spec["path"], attn_implementation="eager", **spec.get("kwargs", {}))


def main() -> None:
    job = json.loads(open(sys.argv[1]).read())
    inputs = torch.load(job["inputs"])
    results = {}
    for spec in job["loads"]:
        model = load(spec)
        with torch.no_grad():
            logits = model(**inputs).logits
        tokens = model.generate(**inputs, max_new_tokens=job["new_tokens"], do_sample=False)
        results[spec["name"]] = {"logits": logits, "tokens": tokens}
        if "save_to" in spec:
            model.save_pretrained(spec["save_to"])
    mmrope_hf = sys.modules.get("mmrope_hf")  # looked up, never imported
    modules = {"started_with": STARTED_WITH, "mmrope_hf_file": getattr(mmrope_hf, "__file__", None)}
    torch.save({"results": results, "modules": modules}, job["out"])


if __name__ == "__main__":
    main()
