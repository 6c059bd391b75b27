"""``python -m rdpt_lab [STAGE ...]``: the lab's lineage (rdpt_lab.lineage, ``make lab``);
``python -m rdpt_lab selection-experiment --config PATH [--out DIR] [--only-table]``: the
section-4 selection experiment (rdpt_lab.experiment); ``python -m rdpt_lab ensemble [STAGE ...]``:
the two-teacher lineage (rdpt_lab.ensemble, ``make ensemble-lab``)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["selection-experiment"]:
        from . import experiment

        return experiment.main(args[1:])
    if args[:1] == ["ensemble"]:
        from . import ensemble

        return ensemble.main(args[1:])
    from . import lineage

    return lineage.main(args)


if __name__ == "__main__":
    raise SystemExit(main())
