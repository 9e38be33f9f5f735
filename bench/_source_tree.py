"""Import fastbp from this source tree when it has been built in place
(``python setup.py build_ext --inplace``), else the installed package."""
import importlib.machinery
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent


def prefer_built_source_tree():
    """Put the repository root first on sys.path if fastbp/_core is built there."""
    built = [p for suffix in importlib.machinery.EXTENSION_SUFFIXES
             for p in (ROOT / "fastbp").glob(f"_core{suffix}")]
    if built and str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
