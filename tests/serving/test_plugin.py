"""The plugin loads through its entry point, refuses an untested vLLM, leaves stock checkpoints alone, and serves
in vLLM's default multi-process mode and through the OpenAI server."""

from __future__ import annotations

import base64
import gc
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import transformers
from test_parity import assert_parity, serve
from vllm_cases import ENGINE, MAX_NEW_TOKENS, REQUESTS, image, run_transformers, run_vllm

import mmrope_hf.integrations.vllm as plugin


def test_entry_point_registers_the_plugin():
    from importlib.metadata import entry_points

    from vllm.plugins import load_general_plugins

    assert "mmrope_hf.integrations.vllm:register" in {e.value for e in entry_points(group="vllm.general_plugins")}
    load_general_plugins()
    assert plugin.is_registered()


@pytest.mark.parametrize("version", ["0.31.9", "0.33.0", "1.0.0"])
def test_untested_vllm_is_refused_at_plugin_load(monkeypatch, version):
    import vllm

    monkeypatch.setattr(vllm, "__version__", version)
    with pytest.raises(RuntimeError, match=rf"tested with vllm>=0\.32\.0,<0\.33, but vllm {version} is installed"):
        plugin.register()


def test_untested_vllm_stops_vllm_itself():
    """vLLM calls the entry point in a fresh process: the error reaches the caller, not only a log line."""
    code = "import vllm; vllm.__version__ = '0.34.0'; import vllm.plugins as p; p.load_general_plugins()"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode != 0 and "vllm 0.34.0 is installed" in run.stderr


@pytest.fixture
def without_plugin_classes():
    """vLLM's own classes registered again for the Qwen-VL architectures (what vLLM serves without the plugin)."""
    from vllm import ModelRegistry

    from mmrope_hf.integrations.vllm.models import MROPE_FAMILIES

    for architecture, module in MROPE_FAMILIES.items():
        ModelRegistry.register_model(architecture, f"vllm.model_executor.models.{module}:{architecture}")
    yield
    plugin.register()


def test_stock_checkpoint_is_served_unchanged(checkpoints, request):
    checkpoint = checkpoints("qwen2_5_vl")
    with_plugin = serve(checkpoint)
    request.getfixturevalue("without_plugin_classes")
    without = serve(checkpoint)
    assert with_plugin == without


def test_default_multiprocess_mode(checkpoints, monkeypatch):
    """The engine core runs in its own process, which loads the plugin through the entry point."""
    from vllm import LLM

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")
    checkpoint = checkpoints("qwen2_5_vl", "mhrope", nope_heads=1)
    llm = LLM(model=str(checkpoint), **ENGINE)
    try:
        served = run_vllm(llm)
    finally:
        llm.llm_engine.engine_core.shutdown()
        del llm
        gc.collect()
    assert_parity(served, run_transformers(checkpoint))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> dict:
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as response:
        return json.loads(response.read())


def test_openai_server_image_request(checkpoints, tmp_path):
    """``python -m vllm.entrypoints.openai.api_server --model ckpt``: an image chat request gives the greedy tokens
    of transformers + mmrope-hf."""
    checkpoint = checkpoints("qwen2_5_vl", "mrope-i")
    port = _free_port()
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    log = open(tmp_path / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(checkpoint), "--host",
         "127.0.0.1", "--port", str(port), "--dtype", "float32", "--enforce-eager", "--max-model-len", "1024",
         "--limit-mm-per-prompt", json.dumps({"image": 1, "video": 0})],
        stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    try:
        deadline = time.time() + 240
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-3000:]
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5)
                break
            except OSError:
                assert time.time() < deadline, "the server did not start in 240 s"
                time.sleep(1)
        picture = image(0)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
        content = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "describe this image"}]
        reply = _post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"model": str(checkpoint), "messages": [{"role": "user", "content": content}], "temperature": 0.0,
             "max_tokens": MAX_NEW_TOKENS, "ignore_eos": True, "return_token_ids": True},
        )  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=60)
        log.close()
    served = reply["choices"][0]["token_ids"]
    # the same picture through the PNG round trip (lossless), with the checkpoint's own chat template
    proc = transformers.AutoProcessor.from_pretrained(str(checkpoint))
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "describe this image"}]}]
    text = proc.apply_chat_template(messages, add_generation_prompt=True)
    assert text == REQUESTS["image"][0]
    reference = run_transformers(checkpoint)["image"]
    assert reply["prompt_token_ids"] == reference["ids"]
    assert served == reference["tokens"]
