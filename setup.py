"""Build hook for the compiled parts: the optional deformable-convolution sampler and the
optional fused preprocessing kernel.

Everything else is declared in setup.cfg. Both extensions are ``optional``: without a compiler
or Python headers (a bare device image) the build prints a warning and the package still
installs, and the runtime then uses ONNX Runtime's DeformConv and OpenCV's resize (same
values, slower). ``EDGEFACE_NO_DCN_EXT=1`` skips the sampler's build altogether (and, at run
time, the use of an installed one); ``EDGEFACE_NO_PREPROCESS_EXT=1`` does the same for the
preprocessing kernel.
"""

import os

from setuptools import Extension, setup


def _off(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def _extensions():
    extensions = []
    if not _off("EDGEFACE_NO_DCN_EXT"):
        extensions.append(Extension(
            "edgeface.inference.dcn._sampler",
            sources=["edge/inference/dcn/_sampler.c"],
            # -O3: gcc's -O2 (Python's default CFLAGS) leaves the channel loop scalar on
            # gcc < 12.
            extra_compile_args=["-O3", "-fno-trapping-math"],
            extra_link_args=["-pthread"],
            optional=True,
        ))
    if not _off("EDGEFACE_NO_PREPROCESS_EXT"):
        extensions.append(Extension(
            "edgeface.inference._preprocess",
            sources=["edge/inference/_preprocess.c"],
            # -O3 as for the sampler: gcc -O2 < 12 leaves the 16-bit row blend scalar.
            extra_compile_args=["-O3", "-fno-trapping-math"],
            optional=True,
        ))
    return extensions


setup(ext_modules=_extensions())
