"""A small pass manager: runs passes in order and can dump the IR after any of them."""
from __future__ import annotations

from .cfg_cleanup import cleanup_cfg
from .if_conversion import if_convert
from .merge_branch_calls import merge_branch_calls
from .tuple_forwarding import forward_tuples
from .merge_calls import merge_calls
from .fuse_linear import fuse_linear
from .gathered_rows import mark_gathered_rows
from .hoist_loop_calls import hoist_loop_calls
from .temporaries import classify_temporaries
from .loops import find_loops
from .spmd import spmd_schedule
from .uniformity import analyze_uniformity
from .liveness import analyze_liveness
from .last_use import find_last_uses
from .kernel_regions import find_kernel_regions

#: The default pipeline, in order.  Each entry is a function IR -> IR.
DEFAULT_PIPELINE = [cleanup_cfg, forward_tuples, merge_branch_calls, if_convert, hoist_loop_calls, merge_calls, fuse_linear, mark_gathered_rows, classify_temporaries, find_loops, spmd_schedule, analyze_uniformity,
                    analyze_liveness, find_last_uses, find_kernel_regions]


class PassManager:
    def __init__(self, passes=None, dump_after=()):
        self.passes = list(DEFAULT_PIPELINE if passes is None else passes)
        self.dump_after = set(dump_after)
        self.dumps = {}

    def run(self, fn):
        for p in self.passes:
            fn = p(fn)
            if p.__name__ in self.dump_after or "*" in self.dump_after:
                self.dumps[p.__name__] = fn.dump()
        return fn
