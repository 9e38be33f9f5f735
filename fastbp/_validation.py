"""Checks at the Python boundary: each raises TypeError/ValueError naming the argument and what
was expected, before anything is written. Conversions happen once, here."""
import numbers
import math

import numpy as np

from . import _core


def check_int(value, name, minimum=None):
    """Return value as int; it must be an integer (not a bool) >= minimum."""
    if type(value) is not int and (isinstance(value, bool)
                                   or not isinstance(value, numbers.Integral)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_float(value, name, low=None, high=None, low_open=False, high_open=False):
    """Return value as float; it must be a finite real number within [low, high]."""
    if type(value) is float:
        pass  # the common case, without the numbers.Real check (an ABC: slow)
    elif isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int (or Fraction) beyond the float range
        raise ValueError(f"{name} must be finite, got a number too large for a float "
                         f"({type(value).__name__})") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        brackets = ("(" if low_open else "[", ")" if high_open else "]")
        raise ValueError(f"{name} must be in {brackets[0]}{lo}, {hi}{brackets[1]}, got {value}")
    return value


def as_real_array(a, name, dtype):
    """Convert a numeric array-like to an aligned, C-contiguous array of dtype in native byte
    order (no copy when it already is one). Rejects non-numeric and complex data."""
    if a is None:
        raise TypeError(f"{name} must be an array, got None")
    dtype = np.dtype(dtype)
    if type(a) is np.ndarray and a.dtype == dtype and dtype.isnative \
            and a.flags.c_contiguous and a.flags.aligned:
        return a  # the common case, without np.require's conversions
    arr = np.asarray(a)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return np.require(arr, dtype=dtype.newbyteorder("="), requirements=["C", "A"])


def check_finite(arr, name):
    """Raise ValueError if arr holds a NaN or an infinity. Integer and bool arrays always pass;
    float32/float64 arrays that are C-contiguous (what as_real_array returns) are scanned in C
    without a temporary."""
    if arr.dtype.kind in "biu":
        return
    if arr.dtype in (np.float32, np.float64) and arr.dtype.isnative \
            and arr.flags.c_contiguous and arr.flags.aligned:
        finite = _core.all_finite(arr)
    else:
        finite = np.isfinite(arr).all()
    if not finite:
        raise ValueError(f"{name} contains NaN or infinity")


def as_samples(X, name, dtype, n_features):
    """X as a finite (n_samples, n_features) C-contiguous array of dtype, n_samples >= 1."""
    X = as_real_array(X, name, dtype)
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-d (n_samples, {n_features}), got shape {X.shape}")
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty: it must have at least one sample")
    if X.shape[1] != n_features:
        raise ValueError(
            f"{name} must have {n_features} features (columns) for this model, got {X.shape[1]}")
    check_finite(X, name)
    return X
