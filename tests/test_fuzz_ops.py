"""Property-based tests of every public function of fastbp.ops (the fuzz tests follow)."""
import math

import numpy as np

from fastbp import ops

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def test_relu_propagates_nan_as_numpy_and_torch():
    """relu(NaN) is NaN (numpy.maximum, torch.relu); it was 0, hiding NaN from the caller."""
    for dtype in FLOATS:
        Z = np.array([np.nan, -1.0, 0.0, 2.0, np.inf, -np.inf], dtype)
        np.testing.assert_array_equal(ops.relu(Z), np.maximum(Z, 0))
        np.testing.assert_array_equal(ops.dense_forward(np.ones((1, 1), dtype), Z[None, :],
                                                        np.zeros(6, dtype), "relu")[0],
                                      np.maximum(Z, 0))
