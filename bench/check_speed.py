"""How fast `dltspec check` is, whole process, start to exit.

    python bench/check_speed.py            # 15 runs each; prints a markdown table
    python bench/check_speed.py --runs 5

Measures, side by side in one run (medians):

- ``python -c pass``: the interpreter's own start-up, the floor;
- ``python -c "import dltspec.cli"``: start-up plus dltspec's imports;
- ``dltspec check`` of one small spec (``specs/digits.dlt``);
- ``dltspec check`` of a directory of 1,000 specs (the shipped specs with varied values,
  a tenth of them broken so the error path is timed too).

The share of the one-spec time spent importing is (imports - floor) / (one spec - floor).
Aims (issue 3): one spec well under 0.3 s, 1,000 specs under 3 s.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SPECS = sorted((ROOT / "specs").glob("*.dlt"))


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall(argv: list[str], runs: int, ok=(0, 1)) -> tuple[float, float]:
    """Median wall time and median CPU time (user + system) of running ``argv``, in seconds.

    On a shared machine the CPU time is the steadier figure: it does not count waiting for a core.
    """
    times, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), cpu_seconds()
        done = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        times.append(time.perf_counter() - start)
        cpu.append(cpu_seconds() - start_cpu)
        if done.returncode not in ok:
            raise SystemExit(f"{' '.join(argv)} exited {done.returncode}")
    return statistics.median(times), statistics.median(cpu)


def write_specs(directory: Path, n: int) -> None:
    """``n`` specs: the shipped ones with the learning rate varied; every tenth one broken."""
    texts = [p.read_text() for p in SPECS]
    for i in range(n):
        text = re.sub(r"learning_rate = [0-9.e-]+", f"learning_rate = {i + 1}e-4", texts[i % len(texts)], count=1)
        if i % 10 == 9:
            text = text.replace("batch_size = ", "batch_size = = ", 1)
        (directory / f"spec{i:04d}.dlt").write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    py = sys.executable
    check = [py, "-m", "dltspec", "check"]
    wall(check + [str(SPECS[0])], 2)  # warm the file cache and dltspec's parser cache
    floor = wall([py, "-c", "pass"], args.runs, ok=(0,))
    imports = wall([py, "-c", "import dltspec.cli"], args.runs, ok=(0,))
    one = wall(check + ["specs/digits.dlt"], args.runs, ok=(0,))
    with tempfile.TemporaryDirectory() as tmp:
        write_specs(Path(tmp), 1000)
        many = wall(check + ["--format", "json", tmp], max(3, args.runs // 3))
    share = (imports[1] - floor[1]) / (one[1] - floor[1])
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}, "
          f"{platform.python_implementation()} {platform.python_version()}; median of {args.runs} runs "
          f"(1,000 specs: {max(3, args.runs // 3)})\n")
    print("| what | wall time | CPU time | aim |\n|---|---|---|---|")
    print(f"| `python -c pass` (floor) | {floor[0] * 1000:.0f} ms | {floor[1] * 1000:.0f} ms | |")
    print(f"| `python -c 'import dltspec.cli'` | {imports[0] * 1000:.0f} ms | {imports[1] * 1000:.0f} ms | |")
    print(f"| `dltspec check specs/digits.dlt` | {one[0] * 1000:.0f} ms | {one[1] * 1000:.0f} ms "
          "| well under 300 ms |")
    print(f"| `dltspec check` on 1,000 specs | {many[0]:.2f} s | {many[1]:.2f} s | under 3 s |")
    print(f"\nImports are {share:.0%} of one spec's CPU time above the interpreter's start-up "
          f"({(imports[1] - floor[1]) * 1000:.0f} of {(one[1] - floor[1]) * 1000:.0f} ms).")

if __name__ == "__main__":
    main()
