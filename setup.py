"""Build fastbp's one extension, fastbp._core: the Cython boundary plus the C kernels in src_c/.

Build variables (environment):
  FASTBP_NATIVE=1     compile for this machine's CPU (-march=native). Opt-in only: such a build
                      dies with "Illegal instruction" on an older CPU.
  FASTBP_DEBUG_GIL=1  count, at each `with nogil:` block of fastbp/_core.pyx, calls made with the
                      GIL still held (fastbp._core._gil_counts(); tests/test_gil.py).
  FASTBP_SANITIZE=1   build with AddressSanitizer + UndefinedBehaviorSanitizer (and -g), at the
                      release build's -O3, so that the vectorized code is the code checked
                      (tools/run_sanitized.sh builds and runs the tests this way).
A variable changes only how the extension is compiled, not its sources: after changing one,
rebuild with `python setup.py build_ext --inplace --force`.
"""
import os

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_SOURCES = ["activations.c", "losses.c", "small_gemm.c", "dense.c", "optim.c", "checks.c",
             "train.c"]
SANITIZE = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all",
            "-fno-omit-frame-pointer"]


class BuildExt(build_ext):
    """Pick optimisation flags per compiler (gcc and clang take the same ones here)."""

    def build_extensions(self):
        flags, link_flags, macros = ["-O3"], [], []
        if self.compiler.compiler_type == "unix":
            flags += ["-fno-math-errno", "-fopenmp-simd", "-Wno-unused-function"]
            if os.environ.get("FASTBP_NATIVE") == "1":
                flags.append("-march=native")
            if os.environ.get("FASTBP_SANITIZE") == "1":
                # -O3 kept: the release build's vectorized loops and FMA contractions are what
                # must be checked (and tests compare chunked and whole-batch results bitwise).
                # -fno-wrapv undoes CPython's -fwrapv, which would hide signed-overflow
                # reports (these flags come after CPython's).
                flags += ["-g", "-fno-wrapv"] + SANITIZE
                link_flags += SANITIZE
        if os.environ.get("FASTBP_DEBUG_GIL") == "1":
            macros.append(("FASTBP_DEBUG_GIL", "1"))
        for ext in self.extensions:
            ext.extra_compile_args = flags + ext.extra_compile_args
            ext.extra_link_args = link_flags + ext.extra_link_args
            ext.define_macros = ext.define_macros + macros
        super().build_extensions()


# numpy's random-number distributions as a static library (numpy documents linking it from
# extensions): _core.pyx hands its random_interval to the C shuffle, so shuffles equal numpy's.
NUMPY_RANDOM_LIB = os.path.join(os.path.dirname(numpy.__file__), "random", "lib")

extension = Extension(
    "fastbp._core",
    sources=["fastbp/_core.pyx"] + [os.path.join("src_c", name) for name in C_SOURCES],
    depends=[os.path.join("src_c", name) for name in ("fastbp.h", "kernels.h", "template.h",
                                                      "vecmath.h", "small_gemm_kernel.h")],
    include_dirs=[numpy.get_include(), "src_c"],
    library_dirs=[NUMPY_RANDOM_LIB],
    libraries=["npyrandom"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(
    ext_modules=cythonize([extension], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
