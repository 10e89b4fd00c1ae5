"""Where a report comes from: the commit it was built at and the environment its kernels computed in.

Commit stamp: the commit of the notebooks' repository; a working tree with uncommitted changes (outside
the output folder) is recorded as ``<sha>-dirty`` -- the report then does not claim to be that commit.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from mcal_utils import environment

__all__ = ["git_commit", "kernel_environment", "pin_kernel_threads"]


def git_commit(repo: Path, exclude: Path | None = None) -> str:
    """Short sha of ``repo``'s HEAD, ``<sha>-dirty`` when files (outside ``exclude``) differ from it,
    ``"unknown"`` outside a git repository."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        cmd = ["git", "status", "--porcelain", "--", "."]
        if exclude is not None:
            with contextlib.suppress(ValueError):
                cmd.append(f":(exclude){Path(os.path.abspath(exclude)).relative_to(Path(repo).resolve()).as_posix()}")
        dirty = subprocess.run(cmd, cwd=repo, capture_output=True, text=True, check=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def kernel_environment() -> dict[str, Any]:
    """What decides the bits in the notebook kernels (:func:`environment.describe`), measured in a
    fresh process with the kernels' environment variables (:func:`pin_kernel_threads` applied)."""
    code = "import json; from mcal_utils import environment as e; print(json.dumps(e.describe()))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300, env=os.environ.copy()
        ).stdout
        described = json.loads(out.strip().splitlines()[-1])
    except (subprocess.SubprocessError, OSError, ValueError, IndexError) as exc:
        return {"error": f"could not describe the environment: {type(exc).__name__}: {exc}"}
    return described if isinstance(described, dict) else {"error": f"unexpected description {described!r}"}


def pin_kernel_threads() -> str:
    """Give every notebook kernel :data:`environment.REPORT_THREADS` torch/OpenMP threads (unless
    ``OMP_NUM_THREADS`` is set already): an in-notebook training then gives the same bits on any
    number of cores. Returns the value in force."""
    return os.environ.setdefault("OMP_NUM_THREADS", str(environment.REPORT_THREADS))
