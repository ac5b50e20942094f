"""Azurite (Table Storage and queues, npm package `azurite`, pinned in package.json)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tools.procs import free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite"
# Azurite's well-known development account (public, documented by Microsoft; not a secret).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def connection_string(blob_port: int, queue_port: int, table_port: int) -> str:
    base = "http://127.0.0.1"
    return (
        f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
        f"BlobEndpoint={base}:{blob_port}/{DEV_ACCOUNT};QueueEndpoint={base}:{queue_port}/{DEV_ACCOUNT};"
        f"TableEndpoint={base}:{table_port}/{DEV_ACCOUNT};"
    )


@dataclass
class Azurite:
    process: subprocess.Popen
    blob_port: int
    queue_port: int
    table_port: int

    @property
    def connection_string(self) -> str:
        return connection_string(self.blob_port, self.queue_port, self.table_port)

    def stop(self) -> None:
        stop(self.process)


def start_azurite(location: Path, *, ports: tuple[int, int, int] | None = None, timeout: float = 30,
                  log_file: Path | None = None, in_memory: bool = False) -> Azurite:
    """Azurite keeping its data under `location`, or, `in_memory`, nowhere but in its process.

    On disk, each of its services keeps its metadata in a LokiJS database that it saves every 5 s
    (`autosaveInterval: 5000` in its persistence modules); a save serializes the whole database on
    Node's one thread, so every request waits meanwhile: 35-50 ms here for a queue of 3,000
    messages, more when the cores are busy. That pause is the emulator's own (Azure Storage
    documents throughput targets, not a periodic stop), so the benchmark that measures a tail
    latency (bench/notifications.py) runs Azurite in memory."""
    if not AZURITE_BIN.exists():
        raise RuntimeError("Azurite is not installed: run `npm ci` (make does this)")
    blob, queue, table = ports or (free_port(), free_port(), free_port())
    location.mkdir(parents=True, exist_ok=True)
    args = [
        str(AZURITE_BIN), "--silent", "--disableTelemetry", "--skipApiVersionCheck",
        *(["--inMemoryPersistence"] if in_memory else ["--location", str(location)]),
        "--blobHost", "127.0.0.1", "--blobPort", str(blob),
        "--queueHost", "127.0.0.1", "--queuePort", str(queue),
        "--tableHost", "127.0.0.1", "--tablePort", str(table),
    ]
    output = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(args, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for port in (blob, queue, table):
            wait_for_port(port, timeout=timeout, process=process)
    except Exception:
        stop(process)
        raise
    return Azurite(process, blob, queue, table)
