"""mcal_utils.environment: what decides the bits of a result is recorded, and differs when it should."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from mcal_utils import environment


def test_describe_is_json_and_names_what_decides_the_bits():
    info = environment.describe()
    json.dumps(info)
    for key in ("cpu", "cores", "torch", "torch_cpu_capability", "torch_threads", "numpy", "numpy_simd", "blas",
                "env", "device"):
        assert key in info, key
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert environment.cpu_model() in environment.summary_line(info)


def test_numerics_key_follows_threads_and_env(monkeypatch):
    before = environment.numerics_key(environment.describe())
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(1 if old != 1 else 2)
        assert environment.numerics_key(environment.describe()) != before
    finally:
        torch.set_num_threads(old)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    assert environment.describe()["env"]["OPENBLAS_CORETYPE"] == "Haswell"
    assert environment.numerics_key(environment.describe()) != before


def test_a_forced_instruction_set_shows_in_the_record():
    """A process told to use torch's portable kernels reports it (so a report built that way says so)."""
    code = "import json; from mcal_utils import environment as e; print(json.dumps(e.describe()))"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    assert info["torch_cpu_capability"] == "DEFAULT"
    assert info["env"]["ATEN_CPU_CAPABILITY"] == "default"
    assert environment.numerics_key(info) != environment.numerics_key(environment.describe())
