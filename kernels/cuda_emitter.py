"""The CUDA generator's ``CudaEmitter``: the lane function (one ``__device__``
function per kernel) from a typed IR function -- its blocks as labels, its
edges as ``goto`` with the type conversions a join needs, loop trip counters
for ``max_iters`` -- and the ``extern "C" __global__`` driver around it.
Per-operation emission is inherited from :mod:`.cuda_ops`.

The control flow mirrors :mod:`vmapper.kernels.codegen_emitter` (the numba
generator): blocks in the typing's reverse post-order, a variable stored in
one C variable per dtype it takes (converted on the CFG edges where its type
changes), ``defined`` flags only for variables that may be unbound where they
are read, and the same error checks in the same order, so that the error
table equals the numba kernel's.

Every C variable is declared, zero-initialised, before the first label: a
``goto`` may not jump over an initialisation in C++, and a value read on a
path the typing proved unreachable must still be defined.
"""
from __future__ import annotations

from vmapper.ir import Branch, Const, Jump, Raise, Return
from vmapper.errors import NonTerminationError
from . import typing as kt
from .typing import TT, KernelUnsupported
from .cuda_helpers import ctype, literal
from .cuda_ops import CudaOps

# A failing lane is reported through one 64-bit word, atomicMin'ed with
# (lane << CODE_BITS) | code: the smallest failing lane wins and carries its code.
CODE_BITS = 20


class CudaEmitter(CudaOps):
    def __init__(self, ft: kt.FunctionTypes, count_loops: bool):
        self.ft = ft
        self.fn = ft.fn
        self.count_loops = count_loops
        self.errors = {}          # (line, exc_type, message) -> code
        self.bases = {}           # IR variable -> C base name
        self.decls = {}           # C variable -> (C type, initial value), in first-use order
        self.lines = []
        self.ntmp = 0
        self.loops = {}

    # ---- blocks and edges -------------------------------------------------------------------
    def edge(self, ind, p, s, env):
        """Conversions of variables whose type changes on the edge p -> s, loop counters, goto."""
        tin = self.ft.block_in[s]
        for var, t in sorted(tin.items()):
            have = env.get(var)
            if have is None or isinstance(t, TT) or have.dtype == t.dtype:
                continue
            self.emit(ind, f"{self.vname(var, t.dtype)} = "
                           f"{self.cast(self.vname(var, have.dtype), have.dtype, t.dtype)};")
        if self.count_loops and s in self.loops and p not in self.loops[s].blocks:
            self.emit(ind, f"c{s} = -1;")  # the first arrival is not a trip: trips = back edges taken
        self.emit(ind, f"goto B{s};")

    def block(self, ind, b):
        ft = self.ft
        blk = self.fn.blocks[b]
        env = dict(ft.block_in[b])
        self.emit(0, f"B{b}:;")
        if self.count_loops and b in self.loops:
            code = self.err(self.loops[b].line, NonTerminationError, "loop passed max_iters")
            self.emit(ind, f"if (++c{b} > mi) {self.fail(code)}")
        stop = ft.stop_at.get(b)
        for k, ins in enumerate(blk.instrs):
            if stop is not None and k == stop[0]:
                if stop[1] is None:  # the failing instruction's own operands may need checks
                    for (bb, kk, u) in ft.maybe_unbound:
                        if bb == b and kk == k:
                            self.unbound_check(ind, u, ins.line)
                self.stop(ind, b, stop, ins.line)
                return
            self.instr(ind, b, k, ins, ft.plans[(b, k)], env)
        if stop is not None:
            self.stop(ind, b, stop, blk.term.line)
            return
        for (bb, kk, u) in ft.maybe_unbound:
            if bb == b and kk == "term":
                self.unbound_check(ind, u, blk.term.line)
        self.terminator(ind, b, blk.term, env)

    def terminator(self, ind, b, t, env):
        ft = self.ft
        if isinstance(t, Jump):
            self.edge(ind, b, t.target, env)
        elif isinstance(t, Branch):
            self.emit(ind, f"if ({self.truth_operand(t.cond, env)}) {{")
            self.edge(ind + 1, b, t.if_true, env)
            self.emit(ind, "} else {")
            self.edge(ind + 1, b, t.if_false, env)
            self.emit(ind, "}")
        elif isinstance(t, Return):
            res = ft.result
            if isinstance(res, TT) and isinstance(t.value, Const):
                parts = [self.operand(Const(v), env, (r.dtype,))[0] for v, r in zip(t.value.value, res.items)]
            elif isinstance(res, TT):
                have = env[t.value.name]
                parts = [self.cast(self.vname(f"{t.value.name}#{j}", h.dtype), h.dtype, r.dtype)
                         for j, (h, r) in enumerate(zip(have.items, res.items))]
            else:
                parts = [self.operand(t.value, env, (res.dtype,))[0]]
            for j, p in enumerate(parts):
                self.emit(ind, f"*r{j} = {p};")
            self.emit(ind, "return 0;")
        elif isinstance(t, Raise):
            msg = t.message or f"{t.exc_type.__name__} raised"
            self.emit(ind, self.fail(self.err(t.line, t.exc_type, msg)))
        else:
            raise KernelUnsupported(f"terminator {type(t).__name__}")

    def stop(self, ind, b, stop, line):
        """Every lane that gets here fails: a read of a never-assigned variable, or range() of a float."""
        k, var = stop
        if var is None:
            ins = self.fn.blocks[b].instrs[k]
            plan = self.ft.plans[(b, k)]
            a = ins.args[plan.extra["index"]]
            t = plan.extra["type"]
            desc = type(a.value).__name__ if isinstance(a, Const) else "numpy.bool" if t.dtype.kind == "b" else \
                ("Python " if t.weak else "") + t.dtype.name
            self.emit(ind, self.fail(self.err(ins.line, TypeError,
                                              f"'{desc}' object cannot be interpreted as an integer")))
            return
        shown = var if not var.startswith("$") else "a temporary"
        self.emit(ind, self.fail(self.err(line, UnboundLocalError,
                                          f"local variable '{shown}' referenced before assignment")))

    # ---- the lane function and the kernel -----------------------------------------------------
    def lane_function(self):
        """``static __device__ int lane(p0.., r0*.., mi)``: 0 with the results stored, or an error code."""
        from vmapper.passes.loops import find_loops
        ft = self.ft
        fn = self.fn
        if self.count_loops:
            find_loops(fn)
            self.loops = fn.annotations["loops"]
        items = self.ft.result.items if isinstance(self.ft.result, TT) else (self.ft.result,)
        for b in ft.order:
            self.block(1, b)
        body, self.lines = self.lines, []
        head = []
        params = [f"{ctype(t.dtype)} p{j}" for j, t in enumerate(ft.params)]
        for j, (name, t) in enumerate(zip(fn.params, ft.params)):
            head.append(f"    {self.vname(name, t.dtype)} = p{j};")
        decls = [f"    {ct} {name} = {init};" for name, (ct, init) in self.decls.items()]
        if self.count_loops:
            decls += [f"    i64 c{h} = -1;" for h in sorted(self.loops)]
        outs = [f"{ctype(t.dtype)}* __restrict__ r{j}" for j, t in enumerate(items)]
        sig = ", ".join(params + outs + (["i64 mi"] if self.count_loops else []))
        return ([f"VM_FI int lane({sig}) {{"] + decls + head + [f"    goto B{ft.order[0]};"] + body
                + ["}"])


def kernel_function(name, ft, lanes_args, has_errors, count_loops):
    """The ``extern "C" __global__`` driver: a grid-stride loop, one thread per lane."""
    items = ft.result.items if isinstance(ft.result, TT) else (ft.result,)
    kargs = ["i64 n"]
    call = []
    for j, (t, lanes) in enumerate(zip(ft.params, lanes_args)):
        ct = ctype(t.dtype)
        kargs.append(f"const {ct}* __restrict__ a{j}" if lanes else f"{ct} a{j}")
        # read-only loads (ld.global.nc), __restrict__ notwithstanding: memory-bound kernels
        # (benchmarks/gpu_elementwise.py's ``batched`` column) need them (no __ldg of bool)
        load = f"a{j}[i]" if t.dtype.kind == "b" else f"__ldg(a{j} + i)"
        call.append(load if lanes else f"a{j}")
    kargs += [f"{ctype(t.dtype)}* __restrict__ o{j}" for j, t in enumerate(items)]
    if has_errors:
        kargs.append("u64* __restrict__ err")
    if count_loops:
        kargs.append("i64 mi")
    call += [f"&r{j}" for j in range(len(items))] + (["mi"] if count_loops else [])
    out = [f'extern "C" __global__ void {name}({", ".join(kargs)}) {{',
           "    const i64 stride = (i64)blockDim.x * (i64)gridDim.x;",
           "    for (i64 i = (i64)blockIdx.x * (i64)blockDim.x + (i64)threadIdx.x; i < n; i += stride) {"]
    out += [f"        {ctype(t.dtype)} r{j} = {literal(0, t.dtype)};" for j, t in enumerate(items)]
    out.append(f"        int code = vm_{name}::lane({', '.join(call)});")
    stores = " ".join(f"o{j}[i] = r{j};" for j in range(len(items)))
    if has_errors:
        out.append("        if (code != 0) {")
        out.append(f"            atomicMin(err, ((u64)i << {CODE_BITS}) | (u64)code);")
        out.append("        } else {")
        out.append(f"            {stores}")
        out.append("        }")
    else:
        out.append(f"        (void)code; {stores}")
    out += ["    }", "}"]
    return out

