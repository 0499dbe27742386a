"""bench/cpu_epoch.py's machine line: the CPU's widest vector and matrix instructions, from ``/proc/cpuinfo``
(the speed itself is measured by running the benchmark, not by a test)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import cpu_epoch  # noqa: E402  (bench/ on the path above)


@pytest.mark.parametrize("lines, expected", [
    (["model name\t: Intel(R) Xeon(R)", "flags\t\t: fpu sse2 avx2 fma avx512f avx512bw amx_tile amx_int8"],
     "AVX-512 and AMX"),
    (["flags\t\t: fpu sse2 avx avx2 fma"], "AVX2"),
    (["Features\t: fp asimd evtstrm sve"], "SVE"),
    (["Features\t: fp asimd evtstrm"], "NEON"),
    (["flags\t\t: fpu sse2"], "no AVX2 or NEON"),
    ([], "no AVX2 or NEON"),  # no /proc/cpuinfo (not Linux)
])
def test_the_machine_line_names_the_widest_vector_instructions(lines, expected):
    assert cpu_epoch.vector_isa(lines) == expected
