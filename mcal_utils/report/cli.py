"""The command line: ``python -m mcal_utils.report`` (what ``make report`` and ``make strip-notebooks`` run)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mcal_utils import profiles
from mcal_utils.report.build import build_report, rebuild_index
from mcal_utils.report.notebook import list_notebooks, strip_outputs

__all__ = ["main", "parser"]

DESCRIPTION = "Execute the notebooks with papermill and render the offline HTML report."
EPILOG = (
    "python -m mcal_utils.report --profile default --notebooks notebooks --out reports; "
    "--index-only re-renders OUT/index.html from OUT/run.json (e.g. after a long-profile build into OUT/long); "
    "--strip notebooks removes outputs and execution counts from the notebooks (committed without outputs)."
)


def parser() -> argparse.ArgumentParser:
    """The argument parser of :func:`main`."""
    p = argparse.ArgumentParser(prog="python -m mcal_utils.report", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument(
        "--profile",
        default=None,
        help=f"one of {list(profiles.PROFILE_NAMES + profiles.OPTIONAL_PROFILES)} (long: where defined)",
    )
    p.add_argument("--notebooks", type=Path, default=Path("notebooks"))
    p.add_argument("--out", type=Path, default=Path("reports"))
    p.add_argument("--only", nargs="*", help="notebook prefixes to run, e.g. 00 03")
    p.add_argument("--timeout", type=int, default=None, help="per-cell timeout in seconds")
    p.add_argument(
        "--benchmarks",
        type=Path,
        default=None,
        help="benchmarks markdown to render as benchmarks.html (default: OUT/benchmarks.md)",
    )
    p.add_argument(
        "--require-clean",
        action="store_true",
        help="refuse to build from a working tree with uncommitted changes "
        "(default: build, stamp the commit '<sha>-dirty' and warn)",
    )
    p.add_argument(
        "--index-only",
        action="store_true",
        help="execute nothing: re-render OUT/index.html (and benchmarks.html) from OUT/run.json, "
        "linking the long-profile build of OUT/long/ where there is one",
    )
    p.add_argument("--strip", type=Path, metavar="FOLDER", help="strip outputs from FOLDER's notebooks and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the command; the exit status: 0 done (every notebook ok), 1 some notebook failed, 2 refused (bad
    arguments, a dirty tree with ``--require-clean``, another build writing to OUT, no run.json to re-render)."""
    args = parser().parse_args(argv)
    if args.strip is not None:
        for p in list_notebooks(args.strip):
            if strip_outputs(p):
                print(f"stripped {p}")
        return 0
    try:
        if args.index_only:
            run = rebuild_index(args.out, args.notebooks, args.benchmarks)
            print(
                f"{args.out / 'index.html'} re-rendered from run.json ({len(run.notebooks)} notebooks, "
                f"profile {run.profile}, commit {run.commit})"
            )
            return 0
        results = build_report(
            args.notebooks, args.out, args.profile, args.only, args.timeout, args.require_clean, args.benchmarks
        )
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = [r.name for r in results if r.status != "ok"]
    print(f"report written to {args.out / 'index.html'}; " + (f"FAILED: {failed}" if failed else "all notebooks ok"))
    return 1 if failed else 0
