"""Blocks prepared once per program for the executor's inner loop.

``run_block`` runs every instruction of a block once per step, ~10^3 times
per batched call, so everything about an instruction that does not depend on
the values it sees is worked out here, once: its primitive's rule, a reader
that builds its argument list (constants inline, temporaries from the block's
dict, variables from the frame's environment, with the slow path only for
what a subframe has not gathered yet or what may be unbound), whether it may
need the tape, the variables its result may alias, and the temporaries that
die after it.  ``$t = op(...); x = copy($t)`` with ``$t`` read nowhere else
becomes one step that assigns ``x``; a tuple unpacking (``check_len`` and its
getitems) becomes one step (:class:`UnpackPlan`).  On first use, a plan's steps
are also written out as one generated Python function (:func:`generated_rows`),
which the executor runs instead of its generic loop.

Plans are cached on the :class:`~vmapper.program.Program`; they hold no
runtime state, so concurrent calls share them.
"""
from __future__ import annotations

import numpy as np

from .. import primitives
from ..ir import Branch, Const, Jump, Raise, Return, Var, is_temp
from ..profiler import compiling
from .values import Lanes, Traced

# Operations that move traced values around without computing on them (or whose
# rule is built from other traced primitives): they see Traced values as they are.
# ``check_len`` only reads a length (it unwraps a traced array itself and returns None).
TAPE_PASSTHROUGH = frozenset({"copy", "tuple", "call", "map_call", "map_method", "sum", "min", "max", "check_len",
                              "list_append", "list_extend", "list_setitem", "divmod", "linear"})
# Operations whose array result may be the very object (or a view of) an operand,
# as in Python: ``b = a``, ``t[0]``, ``a[1:]``, ``a.T``, ``a.reshape(...)``, a call's result.
ALIASING_OPS = frozenset({"copy", "getitem", "getattr", "method", "call", "load_global", "np.asarray",
                          "tuple", "list_append", "list_extend", "list_setitem"})
# Of those, the ones whose result is a new container (a tuple, or a list held as one): its
# items may be the operands' arrays, so the operands' names are marked shared, but the
# container itself is reachable from its target only.  ``r.append(v)`` and ``r.extend(s)``
# (``r = list_append(r, v)``) count neither ``r`` (its items are marked already) nor a named
# ``s`` (its items too; a temporary ``s``'s sources are counted) as sources.
CONTAINER_OPS = frozenset({"tuple", "list_append", "list_extend", "list_setitem"})
#: ``InstrPlan.fresh_if_unaliased`` of a container op (truthy: no sources means fresh)
CONTAINER = 2
VIEW_METHODS = frozenset({"reshape", "ravel", "transpose", "view", "squeeze", "swapaxes"})

#: Operations whose per-lane work is a matrix product, a call or a library kernel.
HEAVY_OPS = frozenset({"matmul", "linear", "np.dot", "call", "map_call", "map_method"})

#: ``InstrPlan.tape``: never taped; taped unless its first operand is a container; taped
TAPE_NEVER, TAPE_UNLESS_CONTAINER, TAPE_ALWAYS = 0, 1, 2
#: terminator kinds
T_JUMP, T_BRANCH, T_RETURN, T_RAISE, T_NONE = range(5)
#: Merge tuple unpackings into one row each (:class:`UnpackPlan`); tests turn it off to
#: compare with the instruction-by-instruction path.
MERGE_UNPACKS = True


class InstrPlan:
    __slots__ = ("ins", "op", "prim", "impl", "attrs", "read", "target", "to_temp", "line", "dying",
                 "inplace_name", "alias", "alias_temps", "alias_vars", "tape", "fresh_if_unaliased")

    def __init__(self, ins, dying, lists=frozenset()):
        self.ins = ins
        self.op = op = ins.op
        self.prim = primitives.PRIMITIVES.get(op)
        # an unknown op fails when it runs (as a KeyError naming the line), not here
        self.impl = self.prim.impl if self.prim is not None else _unknown(op)
        self.attrs = ins.attrs
        self.read = make_reader(ins.args)
        self.target = ins.target
        self.to_temp = ins.target is not None and is_temp(ins.target)
        self.line = ins.line
        self.dying = tuple(dying) if dying else ()
        # the variable an in-place update writes through (checked against aliases first)
        self.inplace_name = ins.target if op == "setitem" else ins.attrs.get("inplace")
        self.alias = op in ALIASING_OPS and (op != "method" or ins.attrs.get("name") in VIEW_METHODS)
        sources = ins.args[1:] if op in ("list_append", "list_extend", "list_setitem") else ins.args
        self.alias_temps = tuple(a.name for a in sources if isinstance(a, Var) and is_temp(a.name))
        self.alias_vars = frozenset(a.name for a in sources if isinstance(a, Var) and not is_temp(a.name)
                                    and op != "list_extend")
        base = ins.args[0].name if ins.args and isinstance(ins.args[0], Var) else None
        if base in lists:  # ``lists``: variables that always hold a list built in this function
            if op == "getitem":  # an item of the list: shared with the list's own item, not the list
                self.alias_vars = self.alias_vars - {base} | {"$item"}
            elif op == "copy" and ins.target in lists:  # a ``for`` loop's snapshot of an unchanged list
                self.alias_vars = frozenset()
        # a copy of a fresh temporary is fresh (no alias to record)
        self.fresh_if_unaliased = CONTAINER if op in CONTAINER_OPS else op == "copy"
        if op in TAPE_PASSTHROUGH:
            self.tape = TAPE_NEVER
        elif op in ("getitem", "getattr"):
            self.tape = TAPE_UNLESS_CONTAINER
        else:
            self.tape = TAPE_ALWAYS


class BlockPlan:
    __slots__ = ("block", "instrs", "rows", "term", "term_kind", "term_read", "n_instrs", "live_out", "unpacks",
                 "run", "heavy")

    def __init__(self, program, block):
        self.block = block
        last_use = program.ir.annotations.get("last_use", {}).get(block.id)
        if last_use is not None and len(last_use) != len(block.instrs):
            last_use = None  # stale: some pass changed the block afterwards
        plans, instrs, i = [], block.instrs, 0
        lists = program.ir.annotations.get("lists", frozenset())
        while i < len(instrs):
            ip = InstrPlan(instrs[i], last_use[i] if last_use is not None else (), lists)
            if last_use is not None and i + 1 < len(instrs) and _copies_dying_temp(instrs[i], instrs[i + 1],
                                                                                   last_use[i + 1]):
                # ``$t = op(...); x = copy($t)``: op assigns x itself, one dispatch fewer
                ip.target = instrs[i + 1].target
                ip.to_temp = is_temp(ip.target)
                ip.fresh_if_unaliased = ip.fresh_if_unaliased or True  # (a container stays CONTAINER)
                i += 1
            plans.append(ip)
            i += 1
        self.instrs = tuple(plans)
        # work per lane well above a scalar operation's: computing it for inactive lanes
        # costs more than gathering the active ones (see executor.run_steps)
        self.heavy = any(ip.op in HEAVY_OPS or ip.op.startswith("kernels.") for ip in plans)
        # what the executor's loop reads of each instruction, unpacked in one step; a tuple
        # unpacking (``check_len`` and the getitems after it) is one row (see UnpackPlan)
        self.unpacks = MERGE_UNPACKS
        self.run = None  # the generated function of the rows (generated_rows), made on first use
        rows = [_row(ip) for ip in plans]
        self.rows = _with_unpacks(rows, plans) if MERGE_UNPACKS else tuple(rows)
        self.n_instrs = len(block.instrs)
        term = self.term = block.term
        if isinstance(term, Jump):
            self.term_kind, self.term_read = T_JUMP, None
        elif isinstance(term, Branch):
            self.term_kind, self.term_read = T_BRANCH, make_reader((term.cond,))
        elif isinstance(term, Return):
            self.term_kind, self.term_read = T_RETURN, make_reader((term.value,))
        elif isinstance(term, Raise):
            self.term_kind, self.term_read = T_RAISE, None
        else:
            self.term_kind, self.term_read = T_NONE, None
        live = program.ir.annotations.get("live_in")
        succ = block.successors()
        self.live_out = None if live is None or any(s not in live for s in succ) \
            else frozenset().union(*(live[s] for s in succ)) | {"$ret"}


def _row(ip):
    return (ip.line, ip.inplace_name, ip.read, ip.dying, ip.tape, ip.impl, ip.attrs, ip.target, ip.to_temp,
            ip.alias, ip)


def UNPACK(ctx, args, attrs):
    """The ``impl`` of an :class:`UnpackPlan` row (the executor never calls it)."""
    raise AssertionError("an unpack row runs in the executor")


class UnpackPlan:
    """``[check_len(t, n=k);] x0 = t[0]; x1 = t[1]; ...``: the unpacking of a temporary.

    When ``t`` is a tuple of the right length (a call's or a kernel's results), the
    executor assigns every item in one row (``items``: per getitem row, its index and its
    store/alias fields), instead of dispatching each instruction; otherwise it runs the
    original ``rows`` one by one, which do the checks and raise the errors (each naming its
    own line: the fast path raises nothing)."""
    __slots__ = ("src", "n", "items", "rows", "dying", "size")

    def __init__(self, src, n, plans, rows):
        self.src, self.n, self.rows = src, n, tuple(rows)
        self.items = tuple((ip.ins.args[1].value, ip.target, ip.to_temp, ip.alias, ip.alias_vars, ip.alias_temps,
                            ip.fresh_if_unaliased) for ip in plans if ip.op == "getitem")
        self.dying = tuple(dict.fromkeys(t for ip in plans for t in ip.dying))
        self.size = len(rows)  # instructions it stands for (the launch count)

    def assign(self, v, frame, temps, alias_sources, store_mask, shared):
        """The fast path: assign ``v[j]`` to each item's target as the getitem instructions
        would (the executor's bookkeeping of aliases included); False, having done nothing,
        when an index is out of range."""
        size = len(v)
        for item in self.items:
            if not -size <= item[0] < size:
                return False
        for t in self.dying:
            temps.pop(t, None)
        for j, target, to_temp, alias, alias_vars, alias_temps, fresh in self.items:
            store_result(v[j], target, to_temp, alias, alias_vars, alias_temps, fresh, False,
                         frame, temps, alias_sources, store_mask, shared)
        return True


def store_result(value, target, to_temp, alias, alias_vars, alias_temps, fresh, keeps_shared,
                 frame, temps, alias_sources, store_mask, shared):
    """Assign an instruction's result to its target: a temporary, or a variable of ``frame``
    (on every lane when ``store_mask`` is None), with the aliasing bookkeeping: an array-like
    result may be the very array of ``alias_vars``/``alias_temps``' sources, and then both
    names are marked shared (an in-place update of either must copy first). ``keeps_shared``:
    the target stays shared whatever the result (``a[i] = v`` updates ``a``, not a new array).
    The executor's generic loop and :class:`UnpackPlan` use it; :func:`generated_rows` writes
    the same steps out per instruction."""
    sources = None
    if alias:
        tv = type(value)
        if tv is tuple or tv is Lanes and value.data.ndim > 1 \
                or tv is not Lanes and tv not in _NEVER_ARRAYS and _is_array(value):
            sources = set(alias_vars)
            for t in alias_temps:
                src = alias_sources.get(t)
                if src:
                    sources |= src
            if not sources and fresh:
                sources = None
    if to_temp:
        temps[target] = value
        if sources is not None:
            alias_sources[target] = sources
        return
    if store_mask is None:  # Frame.store on every lane
        frame.dirty.add(target)
        frame.env[target] = value
        undef = frame.undef
        if target in undef:
            del undef[target]
    else:
        frame.store(target, value, store_mask)
    if fresh == CONTAINER:  # a new container: its items' names are shared, not the container
        shared.discard(target)
        if sources is not None:
            shared.update(sources)
    elif sources is not None:  # both names now reach the same array
        shared.add(target)
        shared.update(sources)
    elif target in shared and not keeps_shared:
        shared.discard(target)


def fresh_attrs(obj):
    """Whether ``obj.<attr>`` is a new value on every read (a tree node's attribute is a copy
    of its row): a ``getattr`` result then shares its array with no other name."""
    return getattr(type(obj), "__vmapper_fresh_attrs__", False)


def _is_array(v):
    """A per-sample or shared array (differentiated or not), which an update in place would
    change for every name that reaches it."""
    if type(v) is Traced:
        v = v.value
    return isinstance(v, Lanes) and v.data.ndim > 1 or isinstance(v, np.ndarray) and v.ndim > 0


#: Types whose values ``_is_array`` always rejects (neither Lanes nor numpy arrays): the
#: common results (Python scalars), told apart without a call.
_NEVER_ARRAYS = frozenset({int, float, bool, complex, str, type(None), slice})


def _unpack_item(ip, src):
    a = ip.ins.args
    return (ip.op == "getitem" and ip.prim is not None and not ip.attrs and ip.target is not None
            and ip.target != src and ip.inplace_name is None and len(a) == 2 and isinstance(a[0], Var)
            and a[0].name == src and isinstance(a[1], Const) and type(a[1].value) is int)


def _with_unpacks(rows, plans):
    """``rows`` with each run of unpacking instructions of one temporary merged into one row."""
    out, i = [], 0
    while i < len(plans):
        ip = plans[i]
        a = ip.ins.args
        j = i
        if ip.op == "check_len" and ip.target is None and ip.prim is not None and len(a) == 1 \
                and isinstance(a[0], Var) and is_temp(a[0].name) and type(ip.attrs.get("n")) is int \
                and set(ip.attrs) == {"n"}:
            src, n, j = a[0].name, ip.attrs["n"], i + 1
        elif ip.op == "getitem" and len(a) == 2 and isinstance(a[0], Var) and is_temp(a[0].name):
            src, n = a[0].name, None
        else:
            src = None
        if src is not None:
            k = j
            while k < len(plans) and _unpack_item(plans[k], src):
                k += 1
            if k - j >= 2 or n is not None and k > j:
                group = plans[i:k]
                up = UnpackPlan(src, n, group, rows[i:k])
                out.append((ip.line, None, None, up.dying, TAPE_NEVER, UNPACK, None, None, False, False, up))
                i = k
                continue
        out.append(rows[i])
        i += 1
    return tuple(out)


def _copies_dying_temp(ins, nxt, nxt_dying):
    """Whether ``nxt`` is ``x = copy(t)`` of the temporary ``ins`` assigns, read nowhere else."""
    return (nxt.op == "copy" and not nxt.attrs and nxt.target is not None and ins.target is not None
            and is_temp(ins.target) and len(nxt.args) == 1 and isinstance(nxt.args[0], Var)
            and nxt.args[0].name == ins.target and ins.target in nxt_dying
            and ins.op in primitives.PRIMITIVES and nxt.line == ins.line)


def _unknown(op):
    def impl(ctx, args, attrs):  # registered since the plan was made, or a KeyError naming the op
        return primitives.PRIMITIVES[op].impl(ctx, args, attrs)
    return impl


def make_reader(operands):
    """``read(temps, env, undef, slow) -> [values]`` for these operands.

    A temporary missing from ``temps`` raises KeyError, and a variable not in
    ``env`` or possibly unbound goes through ``slow(name)`` (which gathers it
    from a parent frame or raises the unbound-variable error).
    """
    ns, parts = {}, []
    for k, a in enumerate(operands):
        if isinstance(a, Const):
            ns[f"K{k}"] = a.value
            parts.append(f"K{k}")
        elif is_temp(a.name):
            parts.append(f"T[{a.name!r}]")
        else:
            n = repr(a.name)
            parts.append(f"(E[{n}] if {n} in E and {n} not in U else S({n}))")
    src = f"def read(T, E, U, S):\n    return [{', '.join(parts)}]\n"
    exec(compile(src, "<vmapper block reader>", "exec"), ns)
    return ns["read"]


def block_plan(program, block) -> BlockPlan:
    """The plan of ``block`` (made on first use, then cached on the program)."""
    cache = program.__dict__.get("_block_plans")
    if cache is None:
        cache = program.__dict__.setdefault("_block_plans", {})
    plan = cache.get(block.id)
    if plan is None or plan.block is not block or plan.n_instrs != len(block.instrs) \
            or plan.unpacks is not MERGE_UNPACKS:
        with compiling("block plan"):  # (once per block: an open vmapper.profile() books it apart)
            plan = cache[block.id] = BlockPlan(program, block)
    return plan


# ---- a block's instructions as one generated function -------------------------------------------
#
# The executor's generic loop (``executor._exec_rows``) spends ~100 bytecodes per instruction
# on dispatch: unpacking the row, testing flags that never change, calling the reader.  For
# each block a function is generated instead, once, with the same steps in the same order
# written out per instruction (flags resolved, operands read inline), which roughly halves
# that.  Same semantics, errors included; ``GENERATE`` off gives the generic loop (tests
# compare the two).

#: Run blocks through generated functions (see above).
GENERATE = True


def _operand(a, k, j, ns):
    if isinstance(a, Const):
        ns[f"K{k}_{j}"] = a.value
        return f"K{k}_{j}"
    if is_temp(a.name):
        return f"temps[{a.name!r}]"
    n = repr(a.name)
    return f"(env[{n}] if {n} in env and {n} not in undef else read_var({n}))"


def _gen_row(k, row, done, ns, out):
    """Source lines for row ``k``; ``done``: the launches counted once it has run."""
    line, inplace, read, dying, tape, impl, attrs, target, to_temp, alias, ip = row
    w = out.append
    w(f"        ctx.line = {line!r}")
    if impl is UNPACK:
        ns[f"U{k}"] = ip
        cond = "" if ip.n is None else f" and len(v) == {ip.n}"
        w(f"        v = temps.get({ip.src!r})")
        w(f"        if not (type(v) is tuple{cond} and U{k}.assign(v, frame, temps, alias_sources, store_mask, "
          f"shared)):")
        w(f"            _exec_rows(U{k}.rows, ctx, frame, temps, alias_sources, store_mask, count)")
        w(f"            skipped += {ip.size}  # (those instructions counted themselves)")
        w("        v = None")
        w(f"        done = {done}")
        return
    ns[f"I{k}"], ns[f"F{k}"], ns[f"A{k}"], ns[f"P{k}"] = ip, impl, attrs, ip.prim
    if inplace is not None:
        w(f"        if {inplace!r} in shared:")
        w(f"            _check_not_shared(ctx, I{k}.ins, frame, temps)")
    reads = ", ".join(_operand(a, k, j, ns) for j, a in enumerate(ip.ins.args))
    w("        try:")
    w(f"            args = [{reads}]")
    w("        except KeyError:")
    w(f"            args = _slow_args(I{k}, frame, temps, ctx)")
    w("        value = None")
    for t in dying:
        w(f"        temps.pop({t!r}, None)")
    w("        try:")
    call = f"F{k}(ctx, args, A{k})"
    if tape:
        test = "Traced in types or tuple in types and any(map(has_traced, args))"
        if tape == TAPE_UNLESS_CONTAINER:
            test = f"({test}) and not isinstance(args[0], (tuple, list, dict))"
        w("            if taping:")
        w("                types = tuple(map(type, args))")
        w(f"                value = apply_traced(P{k}, ctx, args, A{k}) if {test} else {call}")
        w("            else:")
        w(f"                value = {call}")
    else:
        w(f"            value = {call}")
    if ip.ins.guards:  # (if-converted: it runs on lanes that may not run it)
        ns[f"G{k}"] = ip.ins.guards
        w("        except RecursionError:")
        w("            raise")
        w("        except Exception as exc:")
        w(f"            value = speculation_failed(ctx, temps, G{k}, exc)")
    else:
        w("        except (BatchingError, RecursionError):")
        w("            raise")
        w("        except Exception as exc:")
        w('            raise ctx.lane_error_all(str(exc), type(exc)) from exc')
    w(f"        done = {done}")
    if target is None:
        return
    if alias:
        w("        sources = None")
        w("        tv = type(value)")
        fresh_test = " and not fresh_attrs(args[0])" if ip.op == "getattr" else ""
        w("        if (tv is tuple or tv is Lanes and value.data.ndim > 1 or tv is not Lanes and tv not in "
          f"_NEVER_ARRAYS and _is_array(value)){fresh_test}:")
        ns[f"AV{k}"] = ip.alias_vars
        w(f"            sources = set(AV{k})")
        for t in ip.alias_temps:
            w(f"            src = alias_sources.get({t!r})")
            w("            if src:")
            w("                sources |= src")
        if ip.fresh_if_unaliased:
            w("            if not sources:")
            w("                sources = None")
    tn = repr(target)
    if to_temp:
        w(f"        temps[{tn}] = value")
        if alias:
            w("        if sources is not None:")
            w(f"            alias_sources[{tn}] = sources")
        return
    w("        if store_mask is None:")
    w(f"            dirty.add({tn})")
    w(f"            env[{tn}] = value")
    w(f"            if {tn} in undef:")
    w(f"                del undef[{tn}]")
    w("        else:")
    w(f"            frame.store({tn}, value, store_mask)")
    discard = f"{tn} in shared" + (" and False" if ip.op == "setitem" else "")
    if ip.fresh_if_unaliased == CONTAINER:
        w(f"        shared.discard({tn})")
        w("        if sources is not None:")
        w("            shared.update(sources)")
        return
    if alias:
        w("        if sources is not None:")
        w(f"            shared.add({tn})")
        w("            shared.update(sources)")
        w(f"        elif {discard}:")
    else:
        w(f"        if {discard}:")
    w(f"            shared.discard({tn})")


def generated_rows(plan):
    """``run(ctx, frame, temps, alias_sources, store_mask, count)``: the plan's rows as one
    generated function (made on first use, kept on the plan)."""
    if plan.run is not None:
        return plan.run
    with compiling("block code"):  # (once per block: an open vmapper.profile() books it apart)
        return _generate_rows(plan)


def _generate_rows(plan):
    from . import executor as X
    from ..autodiff.tape import apply_traced, has_traced
    from ..errors import BatchingError
    from .speculation import speculation_failed
    from .values import Traced
    ns = {"Traced": Traced, "Lanes": Lanes, "apply_traced": apply_traced, "has_traced": has_traced,
          "BatchingError": BatchingError, "_check_not_shared": X._check_not_shared, "_is_array": _is_array,
          "_exec_rows": X._exec_rows, "_slow_args": _slow_args, "_NEVER_ARRAYS": _NEVER_ARRAYS,
          "fresh_attrs": fresh_attrs, "speculation_failed": speculation_failed}
    out = ["def run(ctx, frame, temps, alias_sources, store_mask, count):",
           "    state = frame.state",
           "    read_var = ctx.read_var",
           "    shared = frame.shared",
           "    env, undef, dirty = frame.env, frame.undef, frame.dirty",
           "    taping = state.tape is not None",
           "    done = skipped = 0",
           "    try:"]
    done = 0
    for k, row in enumerate(plan.rows):
        done += row[10].size if row[5] is UNPACK else 1
        _gen_row(k, row, done, ns, out)
    out += ["        pass",
            "    finally:",
            "        done -= skipped",
            "        stats = state.stats",
            "        stats.launches += done",
            "        stats.active_lane_ops += count * done",
            "        stats.processed_lane_ops += frame.n * done"]
    exec(compile("\n".join(out) + "\n", f"<vmapper block b{plan.block.id}>", "exec"), ns)
    plan.run = ns["run"]
    return plan.run


def _slow_args(ip, frame, temps, ctx):
    """Operands one by one: a temporary read before it is set (IR that skipped the passes)
    or a variable unbound on some lane raises the error the per-sample run would."""
    out = []
    for a in ip.ins.args:
        if isinstance(a, Const):
            out.append(a.value)
        elif a.name in temps:
            out.append(temps[a.name])
        else:
            out.append(ctx.read_var(a.name))
    return out
