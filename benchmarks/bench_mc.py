"""MC-dropout inference: :func:`mcal_utils.mc.predict` (trunk once, T head passes batched)
against :func:`mcal_utils.mc.naive_predict` (T full forward passes), side by side.

T = 50 fresh-mask passes over 10000 MNIST test images (1000 and one repeat with ``quick``)
with the DEIMOS MNIST net and Gal et al.'s Keras MNIST net (untrained weights: the cost does not
depend on them), on the GPU when there is one, else on the CPU with 2 threads. Target:
``predict`` >= 5x faster.

Population case (the MC work of one lockstep step of the DEIMOS 7-vs-9 grid): M = 15 ``deimos_mnist79``
members, J = 50 fixed masks over 2500 candidates each (their own), :func:`mcal_utils.population.predict_population`
against 15 :func:`mcal_utils.mc.predict` calls; reported as measured (no target: on the CPU the
arithmetic is the same; the gain is the GPU's).

    python benchmarks/bench_mc.py [--quick]
"""
from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcal_utils import mc  # noqa: E402
from mcal_utils.device import resolve_device  # noqa: E402
from mcal_utils.models import build_model  # noqa: E402
from mcal_utils.population import predict_population  # noqa: E402

T = 50
TARGET = 5.0
MODELS = ("deimos_mnist10", "gal_mnist")


def _images(n: int) -> tuple[torch.Tensor, str]:
    """The first ``n`` MNIST test images, or uniform noise of the same shape if MNIST is missing."""
    try:
        from mcal_utils.data import load_mnist

        x = torch.from_numpy(load_mnist().x_test[:n]).float()
        return x, "real MNIST test images"
    except Exception as err:  # noqa: BLE001 - any failure to load falls back to noise, and says so
        gen = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=gen), f"random 28x28 tensors (MNIST not loadable: {type(err).__name__})"


def _median_seconds(fn, repeats: int) -> tuple[float, float]:
    """Medians of (wall-clock seconds, process CPU seconds summed over threads) over ``repeats`` runs."""
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def _synced(fn, device: torch.device):
    """``fn`` followed by a CUDA synchronisation (so that wall times include the GPU work)."""
    def call():
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return out
    return call


def _population_row(x: torch.Tensor, source: str, device: torch.device, where: str, quick: bool) -> dict:
    M, n = (3, 200) if quick else (15, 2500)
    models = [build_model("deimos_mnist79", seed=m) for m in range(M)]
    gen = torch.Generator().manual_seed(1)
    xs = [x[torch.randint(0, len(x), (n,), generator=gen)] for _ in range(M)]
    ours = _synced(lambda: predict_population(models, xs, T, masks="fixed", random_states=list(range(M)),  # noqa: E731
                                                 device=device), device)
    base = _synced(lambda: [mc.predict(m, xm, T, masks="fixed", random_state=i, device=device)  # noqa: E731
                            for i, (m, xm) in enumerate(zip(models, xs))], device)
    ours()
    base()  # warm-up of both
    ours_s, _ = _median_seconds(ours, 1 if quick else 3)
    base_s, _ = _median_seconds(base, 1 if quick else 3)
    return dict(benchmark="mc", case=f"population: {M} x deimos_mnist79, fixed J={T}, {n} candidates each",
                ours_s=ours_s, baseline=f"{M} x mc.predict", baseline_s=base_s, ratio=base_s / ours_s,
                target="— (as measured)", met=None, notes=f"{source}; {where}; wall-clock medians")


def run(quick: bool = False) -> list[dict]:
    n = 1000 if quick else 10000
    repeats = 1 if quick else 3
    baseline_repeats = 1  # the naive loop takes minutes per run on 2 threads
    threads = torch.get_num_threads()
    device = resolve_device("auto")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU, 2 threads"
    torch.set_num_threads(2)
    try:
        x, source = _images(n)
        rows = []
        for name in MODELS:
            model = build_model(name, seed=0)
            ours = _synced(lambda: mc.predict(model, x, T, masks="fresh", random_state=0, device=device), device)  # noqa: E731
            naive = _synced(lambda: mc.naive_predict(model, x, T, random_state=0, device=device), device)  # noqa: E731
            ours()  # warm-up (allocator, kernels) outside the timing
            ours_s, ours_cpu = _median_seconds(ours, repeats)
            naive_s, naive_cpu = _median_seconds(naive, baseline_repeats)
            ratio = naive_s / ours_s
            rows.append(dict(
                benchmark="mc", case=f"{name}, T={T}, N={n}", ours_s=ours_s,
                baseline="mc.naive_predict (T full passes)", baseline_s=naive_s, ratio=ratio,
                target=f">= {TARGET:g}x", met=ratio >= TARGET,
                notes=(f"{source}; {where}; wall-clock medians of {repeats} (ours) / {baseline_repeats} "
                       f"(naive) runs; CPU-seconds ours {ours_cpu:.1f} / naive {naive_cpu:.1f} "
                       f"(ratio {naive_cpu / ours_cpu:.1f}x)"),
            ))
        rows.append(_population_row(x, source, device, where, quick))
        return rows
    finally:
        torch.set_num_threads(threads)


def main(argv: list[str] | None = None) -> int:
    """Standalone run: the table of ``run_all.py --only mc`` (``--quick`` passes through)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run_all

    argv = sys.argv[1:] if argv is None else argv
    return run_all.main(["--only", "mc", *argv])


if __name__ == "__main__":
    raise SystemExit(main())
