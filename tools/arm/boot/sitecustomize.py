"""Start-up of the emulated aarch64 Python (tools/arm/python puts this folder first).

Without binfmt_misc the host kernel cannot exec an aarch64 ELF, so a child of
``sys.executable`` (the tests' ``run_nemg``, multiprocessing's spawn) would fail with
"Exec format error". The host can exec the wrapper script, which starts qemu again: make it
the executable.
"""

import os
import sys

if os.environ.get("NEMG_ARM_PYTHON"):
    sys.executable = os.environ["NEMG_ARM_PYTHON"]
