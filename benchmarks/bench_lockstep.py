"""Lockstep population training (:func:`mcal_utils.population.fit_population`) against M
sequential :func:`mcal_utils.training.fit` calls on the same members, side by side.

Cases (the fits of one step of a paper grid, M = 15 members = 5 strategies x 3 seeds):

* DEIMOS 7-vs-9 net ``deimos_mnist79``, Adam, batch 128, L2 0.0005 / N, 300 epochs, at 10, 50
  and 210 labelled points (the batch-1 protocol's first, an early and its last budget);
* the MC-dropout-entropy paper's CNN ``kirillov_cnn`` (BatchNorm, Concrete Dropout), SGD,
  batch 64, 200 epochs, best-validation checkpoint on 1000 validation images, at 1000 labels.

Inputs are seeded uniform noise of MNIST's / the 32x32 proxy's shape (the cost of a fit does not
depend on the pixel values). Cost model: each case trains ``epochs_measured`` epochs (all of them on
a GPU for the DEIMOS net; a few on the CPU, where 15 x 300 epochs take tens of minutes); a fit's
time = its set-up (wall time outside the epochs) + epochs x its mean measured epoch time (the
per-epoch cost is constant: the same batches every epoch). A one-epoch warm-up of both paths runs first (allocator, kernels, cuDNN autotuning). One
repeat (these are minutes-long measurements). The notes also give the largest weight difference
between member 0 of the population and its sequential fit.

Target (issue 9): lockstep >= 10x sequential on one GPU. On the CPU the ratio is reported as
measured, without a target: the per-member arithmetic is the same and CPU kernels are
compute-bound, so batching cannot win much there.

    python benchmarks/bench_lockstep.py [--quick]
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcal_utils.device import resolve_device  # noqa: E402
from mcal_utils.models import build_model  # noqa: E402
from mcal_utils.population import fit_population  # noqa: E402
from mcal_utils.training import DEIMOS_ADAM, KIRILLOV_SGD, fit  # noqa: E402

TARGET = 10.0
THREADS = 2


def _cases(quick: bool) -> list[dict]:
    """name, model kwargs, input shape, classes, labels n, validation size, config, full epochs, members M."""
    deimos = DEIMOS_ADAM.with_(l2_dense=5e-4)
    if quick:
        return [dict(model="deimos_mnist79", kwargs={}, shape=(1, 28, 28), classes=2, n=10, n_val=0,
                     config=deimos, epochs=300, M=2),
                dict(model="kirillov_cnn", kwargs={}, shape=(1, 32, 32), classes=10, n=32, n_val=16,
                     config=KIRILLOV_SGD, epochs=200, M=2)]
    return [dict(model="deimos_mnist79", kwargs={}, shape=(1, 28, 28), classes=2, n=n, n_val=0, config=deimos,
                 epochs=300, M=15) for n in (10, 50, 210)] + \
        [dict(model="kirillov_cnn", kwargs={}, shape=(1, 32, 32), classes=10, n=1000, n_val=1000, config=KIRILLOV_SGD,
              epochs=200, M=15)]


def _epochs_measured(case: dict, device: torch.device, quick: bool) -> int:
    if quick:
        return 1
    if device.type == "cuda":
        return case["epochs"] if case["model"] == "deimos_mnist79" else 20
    return 3 if case["model"] == "deimos_mnist79" else 1


def _data(case: dict, seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(case["n"], *case["shape"], generator=g)
    return x, torch.randint(0, case["classes"], (case["n"],), generator=g)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _scaled(total_s: float, epoch_s: list[float], epochs: int) -> float:
    """Wall time of ``epochs`` epochs from one fit that ran ``len(epoch_s)`` of them in ``total_s``."""
    return total_s + (epochs / len(epoch_s) - 1) * sum(epoch_s)


def measure(case: dict, device: torch.device, epochs: int) -> dict:
    """Wall seconds of the population fit and of the M sequential fits (``epochs`` each, scaled to
    ``case["epochs"]`` by :func:`_scaled`), their process CPU-seconds (unscaled), and the largest
    absolute weight difference of member 0 vs its sequential fit."""
    M = case["M"]
    data = [_data(case, seed=m) for m in range(M)]
    val = _data(dict(case, n=case["n_val"]), seed=10_000) if case["n_val"] else None
    cfg = case["config"].with_(epochs=epochs, device=str(device), progress=False,
                               checkpoint=case["config"].checkpoint if val is not None else "last")
    models = lambda: [build_model(case["model"], seed=100 + m, **case["kwargs"]) for m in range(M)]  # noqa: E731
    val_kw = dict(xs_val=[val[0]] * M, ys_val=[val[1]] * M) if val else {}

    _sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    pop = fit_population(models(), [d[0] for d in data], [d[1] for d in data], config=cfg,
                         random_states=list(range(M)), **val_kw)
    _sync(device)
    lockstep_s = _scaled(time.perf_counter() - t0, [h["seconds"] for h in pop.members[0].history], case["epochs"])
    lockstep_cpu = time.process_time() - c0

    seq_models, seq, sequential_s = models(), [], 0.0
    c0 = time.process_time()
    for m in range(M):
        t0 = time.perf_counter()
        seq.append(fit(seq_models[m], *data[m], config=cfg, random_state=m,
                       **({} if val is None else dict(x_val=val[0], y_val=val[1]))))
        _sync(device)
        sequential_s += _scaled(time.perf_counter() - t0, [h["seconds"] for h in seq[-1].history], case["epochs"])

    sequential_cpu = time.process_time() - c0
    a, b = pop.members[0].model.state_dict(), seq[0].model.state_dict()
    diff = max(float((a[k].double().cpu() - b[k].double().cpu()).abs().max()) for k in a)
    return dict(lockstep_s=lockstep_s, sequential_s=sequential_s, max_weight_diff=diff, lockstep_cpu_s=lockstep_cpu,
                sequential_cpu_s=sequential_cpu)


def run(quick: bool = False, device: str = "auto") -> list[dict]:
    dev = resolve_device(device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        torch.set_num_threads(THREADS)
    try:
        rows = []
        for case in _cases(quick):
            measure(dict(case, M=min(case["M"], 2)), dev, 1)  # warm-up of both paths
            e = _epochs_measured(case, dev, quick)
            got = measure(case, dev, e)
            ours, base = got["lockstep_s"], got["sequential_s"]
            ratio = base / ours
            on_gpu = dev.type == "cuda"
            where = torch.cuda.get_device_name(dev) if on_gpu else f"CPU, {THREADS} threads"
            rows.append(dict(
                benchmark="lockstep",
                case=f"{case['model']}, M={case['M']}, {case['n']} labels, {case['epochs']} epochs",
                ours_s=ours, baseline=f"{case['M']} sequential training.fit", baseline_s=base, ratio=ratio,
                target=f">= {TARGET:g}x (GPU)" if on_gpu else "— (CPU: as measured)",
                met=(ratio >= TARGET) if on_gpu else None,
                notes=(f"{where}; measured {e} of {case['epochs']} epochs, scaled to {case['epochs']} "
                       f"(set-up + epochs x mean epoch time); 1 repeat after a warm-up; member 0 vs its sequential fit: max |dw| = "
                       f"{got['max_weight_diff']:.2g}; process CPU-seconds of the measured epochs: lockstep "
                       f"{got['lockstep_cpu_s']:.3g} / sequential {got['sequential_cpu_s']:.3g} (ratio "
                       f"{got['sequential_cpu_s'] / got['lockstep_cpu_s']:.2f}x; wall times are inflated when "
                       f"other processes share the cores); noise inputs"),
            ))
        return rows
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    """Standalone run: the table of ``run_all.py --only lockstep`` (``--quick`` passes through)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run_all

    argv = sys.argv[1:] if argv is None else argv
    return run_all.main(["--only", "lockstep", *argv])


if __name__ == "__main__":
    raise SystemExit(main())
