"""``python -m mcal_utils.report``: see :mod:`mcal_utils.report.cli`."""

from mcal_utils.report.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
