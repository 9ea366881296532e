"""The one compiled part of pith: kernels._native (see kernels/native.c).

Everything else is in pyproject.toml. The extension is optional: without a C compiler the
install still succeeds and pith re-ranks with FAISS's IndexRefine instead (slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "kernels._native",
            ["kernels/native.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
