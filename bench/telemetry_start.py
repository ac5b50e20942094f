"""What the Azure Monitor OpenTelemetry distro adds to a cold start. With
PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY the Functions worker imports it and calls
`configure_azure_monitor()` when it starts, before it loads function_app; our own import stays as
bench/import_time.py measures it. Part of what the distro imports (azure.identity, and with it
msal and requests) the first request that reaches storage, Key Vault or Graph loads anyway.

Each figure is the median of fresh interpreter processes, runs alternating between the probes.
The connection string points at a closed loopback port and statsbeat is off, so nothing leaves
the machine; the instrumentations are off as infra/main.bicep sets them.
Usage: python bench/telemetry_start.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROBES = {
    "azure.functions": "import azure.functions",
    "distro start": (
        "from azure.monitor.opentelemetry import configure_azure_monitor\n"
        "configure_azure_monitor(connection_string=os.environ['APPLICATIONINSIGHTS_CONNECTION_STRING'], logger_name='')"
    ),
    "azure.identity + requests": "import azure.identity, requests",
}
TEMPLATE = """
import os, sys, time
start = time.perf_counter()
{code}
print(time.perf_counter() - start, len(sys.modules))
sys.stdout.flush()
os._exit(0)
"""


def probe(code: str, env: dict[str, str]) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", TEMPLATE.format(code=code)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), int(out[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    bicep = (ROOT / "infra" / "main.bicep").read_text()
    disabled = re.search(r"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS: '([^']+)'", bicep)
    closed = "https://127.0.0.1:9/"
    env = dict(os.environ,
               APPLICATIONINSIGHTS_CONNECTION_STRING=f"InstrumentationKey={'0' * 8}-{'0' * 4}-{'0' * 4}-{'0' * 4}-"
                                                     f"{'0' * 12};IngestionEndpoint={closed};LiveEndpoint={closed}",
               APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL="true",
               OTEL_EXPERIMENTAL_RESOURCE_DETECTORS="azure_functions",
               OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled.group(1) if disabled else "")
    samples: dict[str, list[tuple[float, int]]] = {name: [] for name in PROBES}
    for _ in range(args.runs):
        for name, code in PROBES.items():
            samples[name].append(probe(code, env))
    median = {name: statistics.median(s[0] for s in runs) for name, runs in samples.items()}
    modules = {name: runs[-1][1] for name, runs in samples.items()}
    for name in PROBES:
        print(f"{name:27}: {median[name] * 1000:7.1f} ms median of {args.runs}  ({modules[name]} modules)")
    extra = median["distro start"] - median["azure.identity + requests"]
    print(f"distro start less what the first storage/Graph call imports anyway: {extra * 1000:7.1f} ms")
    print(f"distro start / import azure.functions: {median['distro start'] / median['azure.functions']:.2f}x")


if __name__ == "__main__":
    main()
