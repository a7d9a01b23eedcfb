"""Run by tests/test_ddp.py in a fresh interpreter (so a stuck rank ends in a timeout, never a hung suite):
2 processes train a tiny patched model; rank 0 saves its first-step gradients and the losses.

    python tests/ddp_job.py SCHEME OPTIONS_JSON FSDP(0|1) OUT.pt
"""

import json
import sys

import torch.multiprocessing as mp

from test_ddp import WORLD, _worker, free_port

if __name__ == "__main__":
    scheme, options, fsdp, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1", sys.argv[4]
    mp.start_processes(
        _worker, args=(WORLD, free_port(), out, scheme, options, fsdp), nprocs=WORLD, start_method="spawn", join=True
    )
