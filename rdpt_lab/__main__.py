"""``python -m rdpt_lab``: the lab (rdpt_lab.run, as ever); ``python -m rdpt_lab
selection-experiment --config PATH [--out DIR] [--only-table]``: the section-4 selection
experiment (rdpt_lab.experiment)."""

from __future__ import annotations

import sys

from . import run


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["selection-experiment"]:
        from . import experiment

        return experiment.main(args[1:])
    return run.main(argv)  # no subcommand: the lab exactly as before (argv None: it reads sys.argv)


if __name__ == "__main__":
    raise SystemExit(main())
