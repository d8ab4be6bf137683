"""How llama.cpp spread a model over its devices (local GPUs, RPC workers), read from
its load log: which device got which layers, and how much weight and KV memory."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from llmcli.engine.log import listening


@dataclass
class SplitReport:
    """Where llama.cpp put the model, read from its load log."""

    offloaded: str = ""  # "30/31 layers"
    weights_mib: dict[str, float] = field(default_factory=dict)  # device -> MiB
    kv_mib: dict[str, float] = field(default_factory=dict)
    layers: dict[str, int] = field(default_factory=dict)  # device -> layers assigned
    described: dict[str, str] = field(default_factory=dict)  # device -> e.g. its endpoint

    def devices(self) -> list[dict[str, Any]]:
        names = sorted(set(self.weights_mib) | set(self.kv_mib) | set(self.layers))
        return [
            {
                "device": name,
                "description": self.described.get(name, ""),
                "layers": self.layers.get(name),
                "weights_mib": round(self.weights_mib.get(name, 0.0), 2),
                "kv_cache_mib": round(self.kv_mib.get(name, 0.0), 2),
            }
            for name in names
        ]

    def as_dict(self) -> dict[str, Any]:
        return {"offloaded": self.offloaded, "devices": self.devices()}

    def line(self) -> str:
        parts = []
        for entry in self.devices():
            layers = f"{entry['layers']} layers, " if entry["layers"] is not None else ""
            about = f" ({entry['description']})" if entry["description"] else ""
            parts.append(
                f"{entry['device']}{about}: {layers}{entry['weights_mib']:.0f} MiB weights, "
                f"{entry['kv_cache_mib']:.0f} MiB KV"
            )
        offloaded = f" ({self.offloaded} layers offloaded)" if self.offloaded else ""
        return f"split over {len(parts)} devices{offloaded}: " + "; ".join(parts)


_OFFLOADED = re.compile(r"offloaded (\d+/\d+) layers")
_MODEL_BUF = re.compile(r"load_tensors:\s+(\S.*?) model buffer size =\s+([\d.]+) MiB")
_KV_BUF = re.compile(r"llama_kv_cache:\s+(\S.*?) KV buffer size =\s+([\d.]+) MiB")
_LAYER = re.compile(r"load_tensors: layer\s+(\d+) assigned to device ([^,\s]+)")
_USING = re.compile(r"using device (\S+) \((.*?)\)")


def _device(name: str) -> str:
    """ "RPC0[127.0.0.1:50052]" and "CPU_Mapped" -> "RPC0" and "CPU"."""
    name = name.partition("[")[0]
    for suffix in ("_Mapped", "_REPACK"):
        name = name.removesuffix(suffix)
    return name


def _buffer_device(report: SplitReport, name: str) -> str:
    """Buffers name a worker's device by its index on that worker and its endpoint
    ("RPC0[host:port]"); the device list numbers them across workers ("RPC1")."""
    endpoint = name.partition("[")[2].rstrip("]")
    for device, description in report.described.items():
        if endpoint and description == endpoint:
            return device
    return _device(name)


def _read_line(report: SplitReport, line: str) -> None:
    """One line of llama.cpp's load log (the layer lines include the output layer)."""
    if m := _OFFLOADED.search(line):
        report.offloaded = m.group(1)
    elif m := _MODEL_BUF.search(line):
        device = _buffer_device(report, m.group(1))
        report.weights_mib[device] = report.weights_mib.get(device, 0.0) + float(m.group(2))
    elif m := _KV_BUF.search(line):
        device = _buffer_device(report, m.group(1))
        report.kv_mib[device] = report.kv_mib.get(device, 0.0) + float(m.group(2))
    elif m := _LAYER.search(line):
        device = _device(m.group(2))
        report.layers[device] = report.layers.get(device, 0) + 1
    elif m := _USING.search(line):
        report.described[_device(m.group(1))] = m.group(2)


@contextmanager
def split_recorded() -> Iterator[SplitReport]:
    """Collect how the load that runs inside this block was split over devices."""
    report = SplitReport()
    pending = [""]

    def hear(text: str) -> None:
        # The log arrives in pieces; lines are read once complete.
        pending[0] += text
        *lines, pending[0] = pending[0].split("\n")
        for line in lines:
            _read_line(report, line)

    with listening(hear):
        yield report
    if pending[0]:
        _read_line(report, pending[0])
