"""Build fastbp's one extension, fastbp._core: the Cython boundary plus the C kernels in src_c/.

Build variables (environment):
  FASTBP_NATIVE=1   compile for this machine's CPU (-march=native). Opt-in only: such a build
                    dies with "Illegal instruction" on an older CPU.
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_SOURCES = ["activations.c", "losses.c", "dense.c", "optim.c", "train.c"]


class BuildExt(build_ext):
    """Pick optimisation flags per compiler (gcc and clang take the same ones here)."""

    def build_extensions(self):
        flags = ["-O3"]
        if self.compiler.compiler_type == "unix":
            flags += ["-fno-math-errno", "-fopenmp-simd", "-Wno-unused-function"]
            if os.environ.get("FASTBP_NATIVE") == "1":
                flags.append("-march=native")
        for ext in self.extensions:
            ext.extra_compile_args = flags + ext.extra_compile_args
        super().build_extensions()


extension = Extension(
    "fastbp._core",
    sources=["fastbp/_core.pyx"] + [os.path.join("src_c", name) for name in C_SOURCES],
    depends=[os.path.join("src_c", name) for name in ("fastbp.h", "kernels.h", "template.h", "vecmath.h")],
    include_dirs=[numpy.get_include(), "src_c"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(
    ext_modules=cythonize([extension], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
