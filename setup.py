"""Build hook for the one compiled part: the optional deformable-convolution sampler.

Everything else is declared in setup.cfg. The extension is ``optional``: without a compiler or
Python headers (a bare device image) the build prints a warning and the package still
installs, and the runtime then uses ONNX Runtime's DeformConv. ``EDGEFACE_NO_DCN_EXT=1`` skips
the build altogether (and, at run time, the use of an installed one).
"""

import os

from setuptools import Extension, setup


def _extensions():
    if os.environ.get("EDGEFACE_NO_DCN_EXT", "") not in ("", "0"):
        return []
    return [Extension(
        "edgeface.inference.dcn._sampler",
        sources=["edge/inference/dcn/_sampler.c"],
        # -O3: gcc's -O2 (Python's default CFLAGS) leaves the channel loop scalar on gcc < 12.
        extra_compile_args=["-O3", "-fno-trapping-math"],
        extra_link_args=["-pthread"],
        optional=True,
    )]


setup(ext_modules=_extensions())
