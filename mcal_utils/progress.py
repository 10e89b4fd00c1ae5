"""When to draw progress bars and print step lines: one rule for training, grids and runs.

Bars (tqdm) only in an interactive terminal; step lines (one per completed AL step) only where no
bar is drawn and the output goes to a log (a file, a background job), never inside a notebook
kernel, which shows its own output. Papermill and nbval kernels are never terminals.
"""

from __future__ import annotations

import os
import sys

__all__ = ["in_notebook", "progress_enabled", "log_enabled"]


def in_notebook() -> bool:
    """True inside a Jupyter kernel (an IPython shell with a kernel attached)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def _stderr_is_tty() -> bool:
    isatty = getattr(sys.stderr, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # closed stream
        return False


def progress_enabled(progress: bool | None = None) -> bool:
    """Whether to draw a progress bar: ``progress`` if given; else only when stderr is a TTY
    and we are not executed by papermill / nbval (their kernels are never TTYs)."""
    if progress is not None:
        return bool(progress)
    if any(name in sys.modules for name in ("papermill", "nbval")):
        return False
    if os.environ.get("PAPERMILL_EXECUTION") or os.environ.get("NBVAL"):
        return False
    return _stderr_is_tty()


def log_enabled(log: bool | None, progress_shown: bool) -> bool:
    """Step lines: ``log`` if given; else when no bar is drawn, stderr is not a terminal (a log file,
    a background job) and we are not inside a notebook kernel (notebooks show their own output)."""
    if log is not None:
        return bool(log)
    if progress_shown or in_notebook():
        return False
    return not _stderr_is_tty()
