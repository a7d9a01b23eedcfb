"""Run by tests/test_ddp.py in a fresh interpreter (so a stuck rank ends in a timeout, never a hung suite):
2 processes train a tiny patched model; each rank saves its report (rank, world size, whether the wrapped model is
patched, final weights; rank 0 also its first-step gradients) to OUT.rank<N>.

    python tests/ddp_job.py SCHEME OPTIONS_JSON FSDP(0|1) ORDER(patch-then-wrap|wrap-then-patch) OUT
"""

import json
import sys

import torch.multiprocessing as mp
from test_ddp import WORLD, _worker, free_port

if __name__ == "__main__":
    scheme, options, fsdp, order, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3] == "1", *sys.argv[4:6]
    mp.start_processes(
        _worker,
        args=(WORLD, free_port(), out, scheme, options, fsdp, order),
        nprocs=WORLD,
        start_method="spawn",
        join=True,
    )
