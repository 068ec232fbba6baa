"""`cairn --help` start-up time, beside a bare `python -c pass` in the same run.

    python bench/cli_startup.py [--runs 20]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def timed(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, check=True)
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--runs", type=int, default=20)
    args = p.parse_args()
    base = timed([sys.executable, "-c", "pass"], args.runs)
    rows = [("python -c pass", base)]
    for cmd in (["cairn", "--help"], ["cairn", "recall", "--help"], ["recall", "--help"]):
        rows.append((" ".join(cmd), timed([str(BIN / cmd[0]), *cmd[1:]], args.runs)))
    for name, t in rows:
        print(f"{name:<22} {t * 1000:7.1f} ms  ({t / base:.1f}x bare python)")


if __name__ == "__main__":
    main()
