"""Frames: the variables of one running function over a set of lanes.

A top-level or callee frame owns its variables.  A *subframe* covers a subset
of its parent's lanes (``idx``, positions in the parent): it is made when a
loop compacts to its still-active lanes.  A subframe reads a parent variable
by gathering it on first use, marks what it writes as dirty, and writes dirty
variables back (scatters) for lanes it drops and when it ends.

A loop's subframe *retires* lanes as they leave the loop: their values of
the variables still live where they go are written back at once, and from
then on those lanes are dead here (``dead``, ``n_dead``).  A block whose
mask covers every live lane may then store without a mask: a dead lane's
slot holds garbage that nothing reads and no write-back copies.

``undef[name]`` is the bool mask of lanes on which ``name`` is not bound
(assigned on some paths only); reading it on an active lane raises the
``UnboundLocalError`` the per-sample run would.
"""
from __future__ import annotations

import sys

import numpy as np

from ..errors import with_article
from .values import _PYTHON_SCALARS, Lanes, Traced, _structural, gather, scatter_blank, scatter_into, select


class Missing(Exception):
    pass


#: The prefix of the variables that hold the arguments of a call merged from both arms of an
#: ``if`` (passes/merge_branch_calls.py): each arm stores its lanes' arguments.
MERGED_ARGUMENT = "$armarg"


def _check_arms_agree(old, value):
    """TypeError when the two arms' arguments of a merged call differ in type beyond what the
    README documents: the store records a conflict, and the call raises if it reads lanes of
    both (one call would compute one arm's lanes in the other's type; an earlier run's lanes,
    a loop's previous trip, are not read).  primitives/structural.py refuses the same where
    the arms became selects."""
    from ..primitives.structural import differ_in_type
    if differ_in_type(old, value):
        a, b = (v.value if type(v) is Traced else v for v in (old, value))
        raise TypeError(f"{with_article(a.data.dtype)} argument in one arm and {with_article(b.data.dtype)} argument in the other: one "
                        f"call for both would compute both arms in {np.result_type(a.data.dtype, b.data.dtype)}")


class Frame:
    __slots__ = ("n", "env", "undef", "dirty", "parent", "idx", "state", "_lane_ids", "owned_in_parent",
                 "shared", "conflicts", "dead", "n_dead", "is_loop")

    def __init__(self, n, state, parent=None, idx=None, lane_ids=None, is_loop=False):
        self.n = n
        self.env = {}
        self.undef = {}
        self.dirty = set()
        self.parent = parent
        self.idx = idx
        self.state = state
        self._lane_ids = lane_ids  # array, or a (frame, idx) pair resolved lazily
        # Parent variables this subframe has already copied once: the parent is
        # suspended while the subframe lives, so later write-backs may go in place.
        self.owned_in_parent = set()
        # Names whose array another name, a view, a container or the caller may also
        # reach; an in-place update through them would have to show up there too.
        self.shared = parent.shared if parent is not None else set()
        # name -> why some lanes' values were dropped: per-sample values of different
        # shapes or kinds (fine in Python until a read mixes them).
        self.conflicts = parent.conflicts if parent is not None else {}
        self.dead = None  # bool mask of retired lanes (None: none)
        self.n_dead = 0
        # A loop's subframe retires lanes with only the variables live where they go;
        # a block's subframe writes back everything it changed.
        self.is_loop = is_loop

    # ---- lanes -------------------------------------------------------------------------
    def lane_ids(self) -> np.ndarray:
        """Positions of this frame's lanes in the user's batch."""
        ids = self._lane_ids
        if ids is None:
            ids = self.parent.lane_ids()[self.idx] if self.parent is not None else np.arange(self.n)
        elif isinstance(ids, tuple):
            src, idx = ids
            ids = src.lane_ids() if idx is None else src.lane_ids()[idx]
        self._lane_ids = ids
        return ids

    def subframe(self, idx, is_loop=False) -> "Frame":
        return Frame(len(idx), self.state, parent=self, idx=idx, is_loop=is_loop)

    # ---- variables ----------------------------------------------------------------------
    def lookup(self, name):
        """The value of ``name`` (raises Missing if unbound on every lane)."""
        env = self.env
        if name in env:
            return env[name]
        if self.parent is None:
            raise Missing(name)
        value = gather(self.parent.lookup(name), self.idx)
        env[name] = value
        pu = self.parent.undef_mask(name)
        if pu is not None:
            self.undef[name] = pu[self.idx]
        return value

    def undef_mask(self, name):
        if name in self.undef:
            return self.undef[name]
        if name in self.env or self.parent is None:
            return None
        pu = self.parent.undef_mask(name)
        return None if pu is None else pu[self.idx]

    def store(self, name, value, mask):
        """Assign ``name = value`` on the lanes in ``mask`` (None: all lanes)."""
        self.dirty.add(name)
        if mask is None:
            self.env[name] = value
            self.undef.pop(name, None)
            return
        try:
            old = self.lookup(name)
        except Missing:
            self.env[name] = value
            self.undef[name] = ~mask
            return
        if value is not old and not _update_in_place(old, value, mask):  # (an update written in place: done)
            try:
                if name.startswith(MERGED_ARGUMENT):
                    _check_arms_agree(old, value)
                self.env[name] = select(mask, value, old, self.n)
            except TypeError as exc:
                # Lanes outside the mask keep a value of another shape or kind: keep only
                # this one; reading the variable on those lanes later is an error.
                self.conflicts[name] = str(exc)
                self.env[name] = value
                self.undef[name] = ~mask
                return
        u = self.undef.get(name)
        if u is not None:
            u = u & ~mask
            if u.any():
                self.undef[name] = u
            else:
                del self.undef[name]

    def scatter_store(self, name, value, idx, undef=None, in_place=False):
        """Write ``value`` (over ``len(idx)`` lanes) into lanes ``idx`` of ``name``.

        ``in_place``: the caller guarantees nothing else refers to the current array.
        """
        self.dirty.add(name)
        if in_place and undef is None and name not in self.undef and self.state.tape is None:
            old = self.env.get(name)
            if isinstance(old, Lanes):
                if isinstance(value, Lanes) and old.data.dtype == value.data.dtype \
                        and old.data.shape[1:] == value.data.shape[1:] and old.weak == value.weak:
                    old.data[idx] = value.data
                    return
                if old.weak and old.data.ndim == 1 and _fits_weak(value, old.data.dtype):
                    old.data[idx] = value  # a uniform Python scalar, e.g. a loop counter
                    return
        old_missing = False
        try:
            old = self.lookup(name)
            was_undef = self.undef.get(name)
        except Missing:
            old = None
            old_missing = True  # was_undef below is ours to change
            tv = type(value)
            fresh = tv is Lanes or tv is Traced and type(value.value) is Lanes
            if fresh or tv in _PYTHON_SCALARS:
                # a fresh array: zeros where the variable is unbound (a traced value's move
                # goes on the tape as a scatter into a blank, without copying the blank first);
                # a uniform scalar stays one
                self.env[name] = value if not fresh else scatter_blank(value, idx, self.n) if tv is Lanes \
                    else _structural().scatter_fresh(value, idx, self.n)
                self._unbound_except(name, idx, undef)
                return
            was_undef = np.ones(self.n, dtype=bool)
        if old is None:
            old = blank_like(value, self.n)
        try:
            if name.startswith(MERGED_ARGUMENT) and not old_missing:
                _check_arms_agree(old, value)
            if not _scatter_in_place(old, value, idx, self.state.tape):
                self.env[name] = scatter_into(old, value, idx, self.n)
        except TypeError as exc:  # a value of another shape or kind on the other lanes
            self.conflicts[name] = str(exc)
            self.env[name] = scatter_into(blank_like(value, self.n), value, idx, self.n)
            was_undef = np.ones(self.n, dtype=bool)
            old_missing = True
        if was_undef is not None or undef is not None:
            u = np.zeros(self.n, dtype=bool) if was_undef is None else \
                was_undef if old_missing else was_undef.copy()
            u[idx] = False if undef is None else undef
            if np.count_nonzero(u):
                self.undef[name] = u
            else:
                self.undef.pop(name, None)

    def _unbound_except(self, name, idx, undef):
        """``name`` just bound on lanes ``idx`` (distinct positions; ``undef``: where it is
        still unbound among them) and on no other lane."""
        if undef is None and len(idx) == self.n:
            self.undef.pop(name, None)
            return
        u = np.empty(self.n, dtype=bool)
        u.fill(True)
        u[idx] = False if undef is None else undef
        if undef is None or u.any():
            self.undef[name] = u
        else:
            self.undef.pop(name, None)

    # ---- compaction -----------------------------------------------------------------------
    def write_back(self, lanes=None, names=None):
        """Scatter dirty variables (those in ``names``; None: all) of the given lanes
        (positions in self; None: every lane not retired) to the parent."""
        if lanes is None and self.dead is not None:
            lanes = np.flatnonzero(~self.dead)
            if not len(lanes):
                return
        parent = self.parent
        pidx = self.idx if lanes is None else self.idx[lanes]
        for name in (self.dirty if names is None else self.dirty & names):
            value = self.env[name]
            if lanes is not None:
                value = gather(value, lanes)
            u = self.undef.get(name)
            if u is not None and lanes is not None:
                u = u[lanes]
            parent.scatter_store(name, value, pidx, u, in_place=name in self.owned_in_parent)
            self.owned_in_parent.add(name)

    def retire(self, lanes, names=None):
        """Lanes ``lanes`` (positions) leave this subframe for good: write back their values
        of ``names`` (None: every dirty variable) now; later stores may clobber them here."""
        if not len(lanes):
            return
        if self.dirty:
            self.write_back(lanes, names)
        if self.dead is None:
            self.dead = np.zeros(self.n, dtype=bool)
        self.dead[lanes] = True
        self.n_dead += len(lanes)

    def restrict(self, keep):
        """Keep only lanes ``keep`` (positions in self), writing the others' dirty values back."""
        dropped = np.ones(self.n, dtype=bool)
        dropped[keep] = False
        if self.dead is not None:
            dropped &= ~self.dead
            self.dead, self.n_dead = None, 0
        if self.dirty and dropped.any():
            self.write_back(np.flatnonzero(dropped))
        self.env = {k: gather(v, keep) for k, v in self.env.items()}
        self.undef = {k: u[keep] for k, u in self.undef.items()}
        self.idx = self.idx[keep]
        self.n = len(keep)
        self._lane_ids = None


class LaneIndices:
    """Lanes of a frame given by their positions (in chunks, maybe repeated).

    Lanes leaving a loop's subframe reach the enclosing frame's pending masks
    this way: collecting them costs O(lanes leaving) per trip, where a bool
    mask of the enclosing frame would cost O(its lanes) on every trip.
    """
    __slots__ = ("n", "chunks")

    def __init__(self, n, chunks):
        self.n = n
        self.chunks = chunks

    def mask(self):
        m = np.zeros(self.n, dtype=bool)
        for c in self.chunks:
            m[c] = True
        return m


def as_mask(m):
    """A pending mask as a bool array (None: every lane)."""
    return m.mask() if type(m) is LaneIndices else m


def _update_in_place(old, value, mask) -> bool:
    """Masked assignment into ``old``'s own buffer, when nothing else can see it.

    Safe only if the variable environment holds the sole reference to ``old``
    and ``old.data`` is referenced by nothing but ``old`` (no alias, no view,
    no tuple holding it): CPython reference counts tell.
    """
    if not (isinstance(old, Lanes) and isinstance(value, Lanes)):
        return False
    data = old.data
    # refs to old: env dict, caller's local, our argument, getrefcount's argument
    if sys.getrefcount(old) > 4 or sys.getrefcount(data) > 3:
        return False
    if not (data.flags.writeable and data.flags.owndata) or data.dtype != value.data.dtype \
            or data.shape != value.data.shape or old.weak != value.weak:
        return False
    m = mask.reshape(mask.shape + (1,) * (data.ndim - 1))
    np.copyto(data, value.data, where=m)
    return True


def _scatter_in_place(old, value, idx, tape) -> bool:
    """``old``'s lanes ``idx`` set to ``value`` in its own buffer, when nothing else can see
    it (as :func:`_update_in_place`), e.g. the second arm of an ``if`` writing back into
    what the first arm's write-back made; never while taping (the tape may hold ``old``)."""
    if tape is not None or type(old) is not Lanes or type(value) is not Lanes:
        return False
    data = old.data
    # refs to old: env dict, caller's local, our argument, getrefcount's argument
    if sys.getrefcount(old) > 4 or sys.getrefcount(data) > 3:
        return False
    if not (data.flags.writeable and data.flags.owndata) or data.dtype != value.data.dtype \
            or data.shape[1:] != value.data.shape[1:] or old.weak != value.weak:
        return False
    data[idx] = value.data
    return True


def _fits_weak(value, dtype) -> bool:
    """Whether a uniform value is a Python scalar that a weak array of ``dtype`` holds as is."""
    t = type(value)
    if t is int:
        return dtype == np.int64 and -2 ** 63 <= value < 2 ** 63
    if t is float:
        return dtype == np.float64
    if t is bool:
        return dtype == np.bool_
    return False


def blank_like(value, n):
    if isinstance(value, Traced):
        value = value.value
    if isinstance(value, Lanes):
        return Lanes(np.zeros((n,) + value.data.shape[1:], value.data.dtype), value.weak)
    if type(value) is tuple:
        return tuple(blank_like(v, n) for v in value)
    blank = getattr(type(value), "__vmapper_blank__", None)
    return blank(value, n) if blank is not None else value
