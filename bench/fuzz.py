"""A longer fuzzing campaign than CI's: the properties of ``tests/fuzz/specs.py`` for as many cases as asked.

    python bench/fuzz.py --cases 20000          # broken specs through check, fmt and the language server
    python bench/fuzz.py --cases 5000 --seed 7  # another part of the space
    python bench/fuzz.py --files --cases 2000   # data and parameter files (tests/test_fuzz_files.py's properties)

Prints how many cases each property ran and how long it took; a failure is shrunk by
Hypothesis to a small example and printed, and the script exits 1. Add what it finds to the
tests as a regression (tests/test_regressions.py; for a file, the test module of its loader, such as
tests/test_sources.py). With ``--files``, converted data sets are cached in a temporary folder.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings, strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fuzz.specs import broken_specs, check_editor, check_text  # noqa: E402

PROPERTIES = {
    "broken specs (check, fmt)": (lambda: broken_specs(), lambda text: check_text(text)),
    "random text (check, fmt)": (lambda: st.text(max_size=400), lambda text: check_text(text)),
    "editor features": (lambda: st.tuples(broken_specs(), st.integers(0, 500), st.integers(0, 500)),
                        lambda case: check_editor(*case)),
}


def campaign(name: str, cases: int, seed_value: int) -> tuple[int, float]:
    strategy, prop = PROPERTIES[name]
    count = [0]

    @seed(seed_value)
    @settings(max_examples=cases, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(strategy())
    def run(case):
        count[0] += 1
        prop(case)

    started = time.perf_counter()
    run()
    return count[0], time.perf_counter() - started


def main_files(cases: int, seed_value: int) -> int:
    """tests/test_fuzz_files.py's properties, ``cases`` each (``FEW`` of them for the valid files)."""
    import os
    import tempfile

    os.environ["DLTSPEC_FUZZ_FILE_CASES"] = str(cases)  # read as the test module is imported
    settings.register_profile("campaign", database=None, derandomize=False)
    settings.load_profile("campaign")
    from tests import test_fuzz_files

    failed = False
    with tempfile.TemporaryDirectory() as cache:
        os.environ["DLTSPEC_CACHE_DIR"] = cache
        for name, test in vars(test_fuzz_files).items():
            if not name.startswith("test_"):
                continue
            started = time.perf_counter()
            try:
                seed(seed_value)(test)()
                print(f"{name}: no failure in {time.perf_counter() - started:.0f} s", flush=True)
            except Exception as exc:  # noqa: BLE001 - report the shrunk failure and go on
                failed = True
                print(f"{name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
    return 1 if failed else 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--cases", type=int, default=10_000, help="cases per property (default 10,000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--files", action="store_true", help="fuzz data and parameter files instead of specs")
    args = p.parse_args(argv)
    if args.files:
        return main_files(args.cases, args.seed)
    failed = False
    for name in PROPERTIES:
        share = args.cases if name != "editor features" else max(1, args.cases // 4)
        try:
            ran, seconds = campaign(name, share, args.seed)
            print(f"{name}: {ran} cases in {seconds:.0f} s, no failure", flush=True)
        except Exception as exc:  # noqa: BLE001 - report the shrunk failure and go on
            failed = True
            print(f"{name}: FAILED: {type(exc).__name__}: {exc}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
