"""Score a small, balanced subset of the real MATH500 outputs (SkyThought, Sky-T1 distilled
model) with the lab's lineage, for the corpus views and the report on real data.

The 10 shortest correct and 10 shortest incorrect responses, scored by T = SmolLM2-135M-Instruct,
S = Gemma-3-270M and D = Gemma-3-270M + the adapter of an earlier lab lineage
(``gemma3-270m-distilled``, data/math500_subset/adapter/). (These small models are not Sky-T1's
teacher and student: this exercises the pipeline on real long reasoning text, it does not
trace Sky-T1's own lineage.) Writes data/math500_subset/{corpus/, scores.parquet}.
"""

from pathlib import Path

from rdpt_core.models import resolve_spec
from rdpt_core.records import load_records
from rdpt_core.scoring import score_corpus
from rdpt_core.store import save_corpus

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "data" / "skythought" / "math500.sky-t1-correct-5k-27b.jsonl"
OUT = ROOT / "data" / "math500_subset"
PER_GROUP = 10


def main() -> None:
    records = load_records(SOURCE, source="sky-t1-correct-5k-27b").records
    picks = []
    for flag in (True, False):
        group = sorted((r for r in records if r.correct is flag), key=lambda r: (len(r.response), r.record_id))
        picks += group[:PER_GROUP]
    specs = {"teacher": resolve_spec("smollm2-135m-instruct"), "student": resolve_spec("gemma3-270m"),
             "distilled": resolve_spec("gemma3-270m-distilled")}
    corpus, report = score_corpus(picks, specs)
    save_corpus(corpus, OUT / "corpus")
    corpus.actions("paper").to_parquet(OUT / "scores.parquet", index=False)
    print(f"{len(picks)} responses -> {OUT} (fresh: {report.fresh})")


if __name__ == "__main__":
    main()
