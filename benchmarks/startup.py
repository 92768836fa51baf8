"""Start-up time of ``import sdd`` and ``sdd --help`` (each in a fresh interpreter).

Prints the median wall time of ``--repeats`` runs and the same for ``import torch`` on the
same machine in the same run, as the reference of what a heavy import costs.

    python benchmarks/startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c 'import sdd'": [sys.executable, "-c", "import sdd"],
    "sdd --help": [sys.executable, "-m", "sdd.cli", "--help"],
    "python -c 'import sdd; sdd.SDD'": [sys.executable, "-c", "import sdd; sdd.SDD"],
    "python -c 'import torch' (reference)": [sys.executable, "-c", "import torch"],
}


def wall_time(command: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    if shutil.which("sdd") is None:
        print("(the sdd entry point is not installed; timing python -m sdd.cli)")
    print(f"{'command':40s} {'median s':>9s} {'min s':>7s}")
    for name, command in COMMANDS.items():
        times = [wall_time(command) for _ in range(args.repeats)]
        print(f"{name:40s} {statistics.median(times):9.2f} {min(times):7.2f}")


if __name__ == "__main__":
    main()
