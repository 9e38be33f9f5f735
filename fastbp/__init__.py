"""fastbp: train multilayer perceptrons on the CPU with the whole training loop in C.

>>> import fastbp as fb
>>> model = fb.Sequential([fb.Dense(64, 32, activation="relu"), fb.Dense(32, 10)], seed=0)
>>> model.compile(loss="categorical_crossentropy", optimizer=fb.Adam(lr=1e-3))
"""
try:
    from . import _core  # noqa: F401  (the compiled extension)
except ImportError as exc:  # pragma: no cover - only on a broken install
    raise ImportError(
        "fastbp's compiled extension (fastbp._core) could not be imported: "
        f"{exc}. Install fastbp with `pip install .` from the source tree (this builds the "
        "extension), or build it in place with `python setup.py build_ext --inplace`. If you "
        "are running Python inside the source tree, the plain `fastbp/` folder there shadows "
        "the installed package: run from another directory."
    ) from exc

from . import callbacks, diagnostics, io, ops, schedules
from .io import load_model
from .layers import Dense
from .losses import BinaryCrossentropy, CategoricalCrossentropy, MeanSquaredError
from .model import History, Sequential
from .optimizers import SGD, Adam, AdamW
from .threads import get_num_threads, num_threads, set_num_threads

__version__ = "0.1.0"

__all__ = [
    "Adam",
    "AdamW",
    "BinaryCrossentropy",
    "CategoricalCrossentropy",
    "Dense",
    "History",
    "MeanSquaredError",
    "SGD",
    "Sequential",
    "callbacks",
    "diagnostics",
    "get_num_threads",
    "io",
    "load_model",
    "num_threads",
    "ops",
    "schedules",
    "set_num_threads",
]
