"""Shared pieces of the property-based tests (tests/test_fuzz_*.py).

Arrays of every numpy dtype and layout, a model of what fastbp's boundary accepts (the oracle
the fuzz tests check the real boundary against), guard bytes around outputs, and one settings
object so that the number of examples per CI run is stated in one place.

Every fuzzed call must end in one of two ways: it returns, and the result is right (checked
against tests/numpy_reference.py); or it raises TypeError/ValueError with a message. In both
cases nothing outside the outputs is written: inputs keep their values, and the bytes around
each output (guard bytes) keep theirs. When it raises, the outputs keep theirs too.
"""
import copy
import os

import numpy as np
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st

# ---- how many examples ----------------------------------------------------------------------
#: Examples per fuzz test. FASTBP_FUZZ_EXAMPLES overrides it (e.g. 2000 for a long local run).
EXAMPLES = int(os.environ.get("FASTBP_FUZZ_EXAMPLES", "150"))
# No "explain" phase: it imports libcst after a failure (slow, and its leaks would be reported
# by LeakSanitizer on top of the failure).
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
                phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

# ---- valid calls and how a call ends -------------------------------------------------------
# Each test first draws `valid`: in about 40% of the examples every argument is drawn from what
# the conventions accept (any layout and integer inputs included), so that results are checked
# often; otherwise every argument may be wrong in any way.
VALID = st.floats(0, 1).map(lambda u: u < 0.4)


def raises_or_returns(call, ok):
    """Run call(): if ok it must return, else raise TypeError/ValueError with a message.
    Records the expectation as a hypothesis event. Returns (result, None) when it returned,
    (None, the exception) when it raised."""
    event("accepted" if ok else "rejected")
    try:
        result = call()
    except (TypeError, ValueError) as exc:
        assert str(exc), "an exception without a message"
        assert not ok, f"a valid call was rejected: {type(exc).__name__}: {exc}"
        return None, exc
    assert ok, "an invalid call was accepted"
    return result, None


# ---- dtypes and layouts ---------------------------------------------------------------------
FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
#: Every kind of numpy dtype, including byte-swapped floats and a structured dtype.
ALL_DTYPES = tuple(np.dtype(d) for d in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64,
    np.float16, np.float32, np.float64, np.longdouble, np.complex64, np.complex128,
    np.clongdouble, object, "U3", "S3", "M8[s]", "m8[s]", ">f4", ">f8", [("a", "<f8")]))
LAYOUTS = ("C", "F", "transposed", "strided", "reversed", "readonly", "unaligned", "list")

#: Values that must not crash anything: NaN, infinities, huge, tiny, signed zero.
SPECIAL = (np.nan, np.inf, -np.inf, 1e30, -1e30, 1e300, 1e-300, -0.0, 0.0)


def is_float(dtype):
    """float32 or float64 in either byte order (what a primary array may be)."""
    return dtype.kind == "f" and dtype.itemsize in (4, 8)


def fill_values(rng, shape, dtype, special):
    """An array of `shape` holding values sensible for `dtype` (mostly small normal numbers;
    with `special`, some NaN/inf/huge entries when the dtype can hold them)."""
    n = int(np.prod(shape, dtype=np.int64))
    if dtype.kind == "b":
        return (rng.random(shape) < 0.5).astype(dtype)
    if dtype.kind in "iu":
        low = 0 if dtype.kind == "u" else -3
        return rng.integers(low, 4, size=shape).astype(dtype)
    if dtype.kind in "fc":
        values = rng.standard_normal(shape)
        if special and n:
            flat = values.reshape(-1)
            picks = rng.integers(0, n, size=max(1, n // 4))
            flat[picks] = rng.choice(np.array(SPECIAL), size=len(picks))
        with np.errstate(over="ignore", invalid="ignore"):
            return values.astype(dtype)
    if dtype.kind == "O":
        out = np.empty(shape, dtype=object)
        out.reshape(-1)[:] = [float(v) for v in rng.standard_normal(n)]
        return out
    if dtype.kind in "US":
        return np.full(shape, "1", dtype=dtype)
    if dtype.kind in "mM":
        return rng.integers(0, 100, size=shape).astype(dtype)
    return np.zeros(shape, dtype=dtype)  # structured


def lay_out(values, layout):
    """The same values in another memory layout (an ndarray, or a list for "list")."""
    if layout == "C":
        return np.ascontiguousarray(values) if values.ndim else values.copy()
    if layout == "F":
        return np.asfortranarray(values) if values.ndim else values.copy()
    if layout == "transposed":  # a .T view of a C array of the reversed shape
        return np.ascontiguousarray(values.T).T if values.ndim else values.copy()
    if layout == "strided":  # every second element of a larger array, on every axis
        if not values.ndim:
            return values.copy()
        big = np.zeros(tuple(2 * s for s in values.shape), dtype=values.dtype)
        view = big[tuple(slice(None, None, 2) for _ in values.shape)]
        view[...] = values
        return view
    if layout == "reversed":  # negative strides on every axis
        if not values.ndim:
            return values.copy()
        rev = values[tuple(slice(None, None, -1) for _ in values.shape)].copy()
        return rev[tuple(slice(None, None, -1) for _ in values.shape)]
    if layout == "readonly":
        out = values.copy()
        out.flags.writeable = False
        return out
    if layout == "unaligned":  # one byte past an aligned buffer
        if values.dtype.itemsize < 2 or values.dtype.kind in "OUSV":
            return values.copy()
        raw = np.zeros(values.nbytes + 1, dtype=np.uint8)[1:]
        out = raw.view(values.dtype).reshape(values.shape)
        out[...] = values
        return out
    if layout == "list":
        if values.dtype.kind in "biuf":
            return values.tolist()
        return values.copy()
    raise ValueError(layout)


@st.composite
def array_spec(draw, good_dtypes=FLOATS, p_good=0.8):
    """(dtype, layout, special) for one array: mostly a dtype from good_dtypes."""
    if p_good >= 1 or draw(st.floats(0, 1)) < p_good:
        dtype = np.dtype(draw(st.sampled_from(good_dtypes)))
    else:
        dtype = draw(st.sampled_from(ALL_DTYPES))
    return dtype, draw(st.sampled_from(LAYOUTS)), draw(st.booleans())


def perturb(draw, shape, p_keep=0.8):
    """`shape`, or (sometimes) a shape that differs from it in one size or in dimensions."""
    if p_keep >= 1 or draw(st.floats(0, 1)) < p_keep:
        return tuple(shape)
    how = draw(st.sampled_from(["size", "ndim+", "ndim-", "any"]))
    shape = list(shape)
    if how == "size" and shape:
        i = draw(st.integers(0, len(shape) - 1))
        shape[i] = (shape[i] + draw(st.integers(1, 6))) % 7
    elif how == "ndim+":
        shape = shape + [1]
    elif how == "ndim-" and shape:
        shape = shape[:-1]
    else:
        shape = draw(st.lists(st.integers(0, 4), max_size=3))
    return tuple(shape)


def make(rng, shape, spec):
    dtype, layout, special = spec
    # np.asarray: for shape () some generators return a numpy scalar, not a 0-d array
    return lay_out(np.asarray(fill_values(rng, shape, dtype, special)), layout)


# ---- what the boundary accepts (the documented conventions of fastbp.ops) -------------------
def as_array(a):
    return a if isinstance(a, np.ndarray) else np.asarray(a)


def primary_dtype(a):
    """The call's dtype set by a primary array (W, Z, pred, logits, A, param), or None when it
    must be rejected (TypeError): float32/float64 only, never converted."""
    if a is None:
        return None
    dtype = as_array(a).dtype
    return dtype.newbyteorder("=") if is_float(dtype) else None


def input_ok(a, dtype):
    """Whether a secondary input (X, b, dZ, dA, target, grad) is accepted for a call in
    `dtype`: floats of that precision, any integer or bool; lists and scalars of any real."""
    if a is None:
        return False
    arr = as_array(a)
    kind = arr.dtype.kind
    if kind in "biu":
        return True
    if kind != "f":
        return False
    if not isinstance(a, (np.ndarray, np.generic)):
        return True  # a list: no precision of its own
    return arr.dtype.itemsize == dtype.itemsize


def output_ok(a, dtype, shape):
    """Whether an array given as an output is accepted: exactly the call's dtype (native
    order), writable, C-contiguous, aligned, the exact shape."""
    if not isinstance(a, np.ndarray) or a.dtype != dtype or not a.dtype.isnative:
        return False
    return (a.flags.writeable and a.flags.c_contiguous and a.flags.aligned
            and a.shape == tuple(shape))


def converted(a, dtype):
    """A secondary input as the call sees it, in float64 for the reference."""
    return np.asarray(as_array(a).astype(dtype), dtype=np.float64)


# ---- guard bytes ----------------------------------------------------------------------------
GUARD = 64  # bytes on each side


class Guarded:
    """An output array inside a larger buffer whose extra bytes hold a pattern: any write past
    either end of the array shows as a changed guard byte. Also remembers the initial
    contents, to check that a call that raised left the output alone."""

    def __init__(self, shape, dtype, init=None, rng=None):
        dtype = np.dtype(dtype)
        n = int(np.prod(shape, dtype=np.int64))
        raw = np.empty(2 * GUARD + n * dtype.itemsize, dtype=np.uint8)
        raw[:] = 0xA5
        self.raw = raw
        self.array = raw[GUARD:GUARD + n * dtype.itemsize].view(dtype).reshape(shape)
        if init is not None:
            self.array[...] = init
        elif rng is not None:
            self.array[...] = rng.standard_normal(shape)
        self.before = self.array.copy()

    def guards_intact(self):
        return bool((self.raw[:GUARD] == 0xA5).all() and (self.raw[-GUARD:] == 0xA5).all())

    def unchanged(self):
        return np.array_equal(self.array, self.before, equal_nan=True)


def snapshot(*arrays):
    """Copies of the arrays (and lists) given, to check later that a call left them alone."""
    return [copy.deepcopy(a) if isinstance(a, list) else
            (a.copy() if isinstance(a, np.ndarray) else a) for a in arrays]


def same(after, before):
    """Whether an argument still holds what it held (NaN equal to NaN)."""
    if isinstance(after, np.ndarray):
        if after.shape != before.shape or after.dtype != before.dtype:
            return False
        if after.dtype.kind in "fc":
            return np.array_equal(after, before, equal_nan=True)
        return np.array_equal(after, before)
    if isinstance(after, list):
        return np.array_equal(np.asarray(after, dtype=np.float64),
                              np.asarray(before, dtype=np.float64), equal_nan=True)
    return True


def assert_unchanged(originals, arrays, names):
    for name, before, after in zip(names, originals, arrays):
        assert same(after, before), f"{name} was modified by the call"


def tolerance(dtype):
    return (2e-4, 2e-5) if np.dtype(dtype) == np.float32 else (1e-9, 1e-11)
