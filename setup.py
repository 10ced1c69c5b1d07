"""The C part of forwarding (media/_fastpath.c); everything else is in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("media._fastpath", ["media/_fastpath.c"], extra_compile_args=["-O2", "-Wall"])
    ]
)
