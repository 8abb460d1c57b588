"""Measurement helpers shared by the benchmark scripts: one implementation of each.

- :func:`timed` (wall and process-CPU seconds of one call, device synchronised around it),
  :func:`time_steps` / :func:`time_interleaved` (warm-up, FLOPs of one call, medians of wall and CPU
  time), :func:`train_step` (one full forward / backward / AdamW step);
- :func:`matmul_rate`: the machine's measured dense matrix-multiply rate, per wall second and per
  CPU second, and :func:`add_flop_rates` (achieved FLOP rate of a step as a share of it);
- :func:`machine_info` (device, threads, load average ...) and :func:`write_report` (atomic JSON).

On a machine shared with other jobs the CPU time (summed over this process's threads) is the steadier
cost measure: uncontended wall time is about CPU time / threads.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from maeir.io_utils import atomic_write_json


def sync(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The mixed-precision dtype the benchmarks train with: bf16 autocast on CUDA, none (fp32) on CPU."""
    return torch.bfloat16 if device.type == "cuda" else None


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float, float]:
    """``(fn(), wall seconds, process CPU seconds)`` of one call, the device synchronised before and after."""
    sync(device)
    start, cpu_start = time.perf_counter(), time.process_time()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start, time.process_time() - cpu_start


def time_repeats(
    fn: Callable[[], Any], device: torch.device, repeats: int
) -> tuple[list[float], list[float]]:
    """``(wall seconds, CPU seconds)`` of ``repeats`` successive calls."""
    times, cpu_times = [], []
    for _ in range(repeats):
        _, wall, cpu = timed(fn, device)
        times.append(wall)
        cpu_times.append(cpu)
    return times, cpu_times


def matmul_rate(
    device: torch.device, dtype: torch.dtype, size: int = 2048, repeats: int = 10
) -> tuple[float, float]:
    """Measured dense matrix-multiply rate: ``(FLOP per wall second, FLOP per CPU second)`` (medians)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    times, cpu = time_repeats(lambda: a @ b, device, repeats + 2)
    flops = 2 * size**3
    return flops / statistics.median(times[2:]), flops / statistics.median(cpu[2:])


def count_flops(fn: Callable[[], Any]) -> int:
    """Model FLOPs of one call of ``fn`` (``torch.utils.flop_counter``)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def train_step(
    model: torch.nn.Module,
    batch: Mapping[str, torch.Tensor],
    device: torch.device,
    autocast: torch.dtype | None = None,
    lr: float = 1e-5,
) -> Callable[[], None]:
    """One full training step (forward under ``autocast``, backward, AdamW) of ``model`` on ``batch``.

    Moves the model (in training mode) and the batch to ``device``; the model returns its loss as
    ``output["loss"]`` (a ``ModelOutput`` or a dict).
    """
    model.to(device).train()
    batch = {k: v.to(device) for k, v in batch.items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)

    def step() -> None:
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            loss = model(**batch)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def step_stats(times: list[float], cpu_times: list[float]) -> dict[str, float]:
    """Median / min / max wall time and median CPU time of timed steps."""
    return {
        "median_step_s": statistics.median(times),
        "median_step_cpu_s": statistics.median(cpu_times),
        "min_step_s": min(times),
        "max_step_s": max(times),
    }


def time_steps(step: Callable[[], Any], device: torch.device, steps: int, warmup: int) -> dict:
    """Median wall time (and process CPU time) of ``step()`` and the FLOPs of one call.

    ``warmup`` untimed calls, one call under the FLOP counter, then ``steps`` timed calls. On CUDA
    also the peak memory allocated during the timed calls (``peak_memory_gib``).
    """
    for _ in range(warmup):
        step()
    flops = count_flops(step)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    result = {**step_stats(*time_repeats(step, device, steps)), "flops_per_step": flops}
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return result


def time_interleaved(
    steps: Mapping[str, Callable[[], Any]], device: torch.device, repeats: int, warmup: int
) -> dict[str, dict]:
    """Like :func:`time_steps` for several steps, timed in alternation (A, B, A, B ...); keeps every time.

    Load from other processes on a shared machine then affects every step alike, so their ratios
    stay meaningful.
    """
    out = {}
    for name, step in steps.items():
        for _ in range(warmup):
            step()
        out[name] = {"flops_per_step": count_flops(step), "times": [], "cpu_times": []}
    for _ in range(repeats):
        for name, step in steps.items():
            _, wall, cpu = timed(step, device)
            out[name]["times"].append(wall)
            out[name]["cpu_times"].append(cpu)
    for result in out.values():
        result.update(step_stats(result["times"], result["cpu_times"]))
    return out


def add_flop_rates(results: Iterable[dict], peak: float, peak_per_cpu_s: float | None = None) -> None:
    """Add the achieved FLOP rate of each timed step, and its share of the measured matmul rate.

    ``achieved_flops_per_s`` / ``fraction_of_matmul_rate`` per wall second; where the step has a
    ``median_step_cpu_s`` and ``peak_per_cpu_s`` is given, also ``flops_per_cpu_s`` /
    ``fraction_of_matmul_rate_per_cpu_s`` (steady on a shared machine: both sides slowed alike).
    """
    for r in results:
        r["achieved_flops_per_s"] = r["flops_per_step"] / r["median_step_s"]
        r["fraction_of_matmul_rate"] = r["achieved_flops_per_s"] / peak
        if peak_per_cpu_s and "median_step_cpu_s" in r:
            r["flops_per_cpu_s"] = r["flops_per_step"] / r["median_step_cpu_s"]
            r["fraction_of_matmul_rate_per_cpu_s"] = r["flops_per_cpu_s"] / peak_per_cpu_s


def device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's (``platform.processor()``, else the machine type)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def load_average() -> tuple[float, float, float] | None:
    """The 1, 5 and 15-minute load averages (None where the OS has none)."""
    return os.getloadavg() if hasattr(os, "getloadavg") else None


def machine_info(device: torch.device, **extra: Any) -> dict[str, Any]:
    """Where the numbers were measured: device, torch threads, visible CPUs, load average now, torch version.

    ``extra`` adds script-specific entries (e.g. ``dtype``).
    """
    return {
        "device": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average": load_average(),
        "torch": torch.__version__,
        **extra,
    }


def write_report(path: str | os.PathLike, report: dict) -> None:
    """Write ``report`` as JSON to ``path`` (atomically; parent folders are created)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, report)
