"""The execution environment a result was computed in, and the settings that fix its numerics.

Floating-point results of training depend on more than the code and the seeds: the CPU's
instruction set (torch, oneDNN, MKL and OpenBLAS each pick kernels for it), the number of
threads a reduction is split over, and library versions. On one machine, with the same
settings, every run of this package is bit-identical; across machines the last bits can
differ, and a long training run amplifies them into a different network (the report's
findings are therefore stated as effects with intervals and verdicts, see
:mod:`mcal_utils.compare`).

* :func:`describe` -- a JSON-able dict of everything that decides those bits; stored in every
  run's ``config.json`` (key ``environment``) and in ``reports/run.json``.
* :func:`numerics_key` -- the part of it that must match for bit-identical results.
* :data:`RUN_THREADS` -- the torch threads every grid run uses, whatever the number of workers
  or cores (a run's records do not depend on how the grid was scheduled).
* :data:`DRIFT_SETTINGS` -- environment variables that make this machine compute like a CPU
  without AVX-512 (the cross-machine drift measured in ``benchmarks/drift.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
from functools import lru_cache
from typing import Any

import numba
import numpy as np
import scipy
import torch
from threadpoolctl import threadpool_info

__all__ = [
    "RUN_THREADS",
    "REPORT_THREADS",
    "NUMERIC_ENV_VARS",
    "DRIFT_SETTINGS",
    "describe",
    "numerics_key",
    "dispatch_key",
    "cpu_model",
    "summary_line",
]

#: torch threads of every run started by ``loop.run_grid`` (pool, in-process or executor):
#: fixed, so a run's records never depend on how many runs shared the machine with it.
RUN_THREADS: int = 1
#: torch/OpenMP threads of the notebook kernels the report runs (``OMP_NUM_THREADS``): fixed,
#: so an in-notebook training gives the same bits on a 2-core and on a 64-core machine.
REPORT_THREADS: int = 2

#: environment variables that change which kernels the numeric libraries run
NUMERIC_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "ATEN_CPU_CAPABILITY",
    "ONEDNN_MAX_CPU_ISA",
    "DNNL_MAX_CPU_ISA",
    "MKL_ENABLE_INSTRUCTIONS",
    "MKL_CBWR",
    "NPY_DISABLE_CPU_FEATURES",
    "NUMBA_CPU_NAME",
    "PYTHONHASHSEED",
    "CUBLAS_WORKSPACE_CONFIG",
)

#: Make an AVX-512 machine pick the AVX2 kernels of every library (as a CPU without AVX-512 would).
DRIFT_SETTINGS: dict[str, str] = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "OPENBLAS_CORETYPE": "Haswell",
    "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
}


@lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``; ``platform.processor()`` elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@lru_cache(maxsize=1)
def _cpu_flags() -> tuple[str, ...]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return tuple(
                        sorted(
                            f
                            for f in line.split(":", 1)[1].split()
                            if f
                            in (
                                "avx",
                                "avx2",
                                "fma",
                                "avx512f",
                                "avx512bw",
                                "avx512vl",
                                "avx512_bf16",
                                "avx512_vnni",
                                "amx_tile",
                            )
                        )
                    )
    except OSError:
        pass
    return ()


def _mkl_onednn_versions(config: str) -> dict[str, str]:
    out = {}
    m = re.search(r"Math Kernel Library Version ([\w.\-]+)", config)
    if m:
        out["mkl"] = m.group(1)
    m = re.search(r"MKL-DNN v([\w.]+)", config)
    if m:
        out["onednn"] = m.group(1)
    return out


def describe(device: Any = None) -> dict[str, Any]:
    """Everything that decides the bits of a result computed in this process (JSON-able).

    Keys: ``python``, ``platform``, ``cpu`` (model name), ``cpu_flags`` (the SIMD ones), ``cores``,
    ``torch``, ``torch_cpu_capability`` (the instruction set torch dispatches to), ``torch_threads``,
    ``torch_interop_threads``, ``mkl``/``onednn`` (torch's), ``numpy``, ``numpy_simd`` (numpy's
    dispatched targets), ``scipy``, ``numba``, ``blas`` (threadpoolctl: library, version, kernel
    architecture, threads), ``env`` (the set :data:`NUMERIC_ENV_VARS`), ``device`` (``cuda`` name
    when used, else ``cpu``).
    """
    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "cpu": cpu_model(),
        "cpu_flags": list(_cpu_flags()),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        **_mkl_onednn_versions(torch.__config__.show()),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
    }
    umath = getattr(getattr(np, "_core", None), "_multiarray_umath", None)  # numpy >= 2; absent elsewhere
    features = getattr(umath, "__cpu_features__", {})
    info["numpy_simd"] = [t for t in getattr(umath, "__cpu_dispatch__", ()) if features.get(t)]
    info["numba"] = numba.__version__
    info["blas"] = sorted(
        (
            {
                "library": d.get("internal_api"),
                "version": d.get("version"),
                "architecture": d.get("architecture"),
                "threads": d.get("num_threads"),
            }
            for d in threadpool_info()
            if d.get("user_api") == "blas"
        ),
        key=lambda d: (str(d["library"]), str(d["version"])),
    )
    info["env"] = {k: os.environ[k] for k in NUMERIC_ENV_VARS if k in os.environ}
    dev = str(device) if device is not None else "cpu"
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev = f"cuda: {torch.cuda.get_device_name(torch.device(dev))}"
    info["device"] = dev
    return info


def numerics_key(info: dict[str, Any]) -> tuple:
    """What must be equal for two environments to give bit-identical results (as far as we know):
    instruction-set dispatch, thread counts, BLAS kernels, the numeric env vars, library versions
    and the device. CPU model names are left out: two models with the same dispatch agree."""
    blas = tuple((b.get("library"), b.get("version"), b.get("architecture")) for b in info.get("blas", []))
    return (
        info.get("torch"),
        info.get("torch_cpu_capability"),
        info.get("torch_threads"),
        info.get("mkl"),
        info.get("onednn"),
        info.get("numpy"),
        tuple(info.get("numpy_simd", [])),
        info.get("scipy"),
        info.get("numba"),
        blas,
        tuple(sorted(info.get("env", {}).items())),
        info.get("device"),
    )


def dispatch_key(info: dict[str, Any]) -> str:
    """Short hash of :func:`numerics_key` without the thread counts (grid runs fix theirs to
    :data:`RUN_THREADS`): keys run caches, so that runs computed with other kernels are not reused."""
    key = numerics_key(
        {
            **info,
            "torch_threads": None,
            "env": {k: v for k, v in info.get("env", {}).items() if not k.endswith("_THREADS")},
        }
    )
    return hashlib.sha256(json.dumps(key, default=str).encode()).hexdigest()[:10]


def summary_line(info: dict[str, Any]) -> str:
    """One readable line: CPU, instruction set, threads, BLAS, versions."""
    blas = ", ".join(f"{b['library']} {b['version']} ({b['architecture']})" for b in info.get("blas", []))
    env = " ".join(f"{k}={v}" for k, v in info.get("env", {}).items() if k != "PYTHONHASHSEED")
    return (
        f"{info.get('cpu')} ({info.get('cores')} cores), torch {info.get('torch')} on "
        f"{str(info.get('torch_cpu_capability')).upper()} with {info.get('torch_threads')} thread(s), "
        f"MKL {info.get('mkl', '?')}, oneDNN {info.get('onednn', '?')}, numpy {info.get('numpy')}"
        + (f", BLAS {blas}" if blas else "")
        + f", device {info.get('device')}"
        + (f"; {env}" if env else "")
    )
