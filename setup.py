"""Only the C extensions; everything else is in pyproject.toml.

``optional=True``: without a compiler the install still succeeds, ADWIN runs on
its pure-Python engine (``detectors.adwin.NATIVE`` is then False; CI's test
``tests/detectors/test_adwin_native.py`` fails in that case) and the class-mix
detector's column path takes its logarithms one ``math.log`` call at a time
(``detectors._sr_columns.NATIVE_LOG``, tested in ``tests/detectors/test_sr_columns.py``).
"""

import sys

from setuptools import Extension, setup

# A fused multiply-add rounds differently from Python's separate operations: the
# C engine must match the reference bit for bit.
flags = [] if sys.platform == "win32" else ["-ffp-contract=off"]

setup(
    ext_modules=[
        Extension(
            "detectors._adwin_core",
            ["detectors/_adwin_core.c"],
            extra_compile_args=flags,
            optional=True,
        ),
        Extension(
            "detectors._libm_log",
            ["detectors/_libm_log.c"],
            extra_compile_args=flags,
            optional=True,
        ),
    ]
)
