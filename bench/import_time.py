"""Cold import time of `function_app` beside `azure.functions` alone (what the worker needs anyway).

Each figure is the median of fresh interpreter processes, so nothing is cached in memory between
runs (the OS file cache is warm, as on a Functions instance after the first start).
Usage: python bench/import_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBE = """
import sys, time
start = time.perf_counter()
import {module}
elapsed = time.perf_counter() - start
heavy = sorted(m for m in ("msal", "requests", "jwt", "azure.identity", "azure.data.tables",
                           "azure.keyvault.secrets", "azure.storage.queue", "cryptography") if m in sys.modules)
print(elapsed, len(sys.modules), ",".join(heavy))
"""


def probe(module: str, env: dict[str, str]) -> tuple[float, int, str]:
    out = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split(" ")
    return float(out[0]), int(out[1]), out[2].strip()


def measure(modules: list[str], runs: int, env: dict[str, str]) -> dict[str, tuple[float, int, str]]:
    """Runs alternate between the modules, so drift in machine load hits both alike."""
    samples: dict[str, list[tuple[float, int, str]]] = {m: [] for m in modules}
    for _ in range(runs):
        for module in modules:
            samples[module].append(probe(module, env))
    return {m: (statistics.median(s[0] for s in runs_), runs_[-1][1], runs_[-1][2]) for m, runs_ in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    env = dict(os.environ)
    env.update(json.loads((ROOT / "local.settings.sample.json").read_text())["Values"])
    figures = measure(["azure.functions", "function_app"], args.runs, env)
    base, base_modules, _ = figures["azure.functions"]
    app, app_modules, heavy = figures["function_app"]
    print(f"import azure.functions : {base * 1000:7.1f} ms median of {args.runs}  ({base_modules} modules)")
    print(f"import function_app    : {app * 1000:7.1f} ms median of {args.runs}  ({app_modules} modules)")
    print(f"function_app's own cost: {(app - base) * 1000:7.1f} ms")
    print(f"heavy SDKs loaded at import: {heavy or 'none'}")


if __name__ == "__main__":
    main()
