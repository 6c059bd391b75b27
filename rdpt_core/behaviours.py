"""SEAL-style behaviour tags for actions (paper appendix A.3.2): execution, reflection, transition.

A documented keyword rule set, matched case-insensitively on word boundaries, in this order:

1. **transition** – the action changes the direction or strategy of the reasoning
   ("alternatively", "another approach", "instead", "let's try", "on the other hand", …);
2. **reflection** – it verifies, checks or questions what was done
   ("wait", "let me check", "verify", "double-check", "hmm", "is that right", "mistake", …);
3. **execution** – anything else: a step that directly advances the solution.

Special markers (``kind == "special"``) get no tag and are left out of the mix, as in the paper.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

EXECUTION, REFLECTION, TRANSITION = "execution", "reflection", "transition"
BEHAVIOURS = (EXECUTION, REFLECTION, TRANSITION)

TRANSITION_KEYWORDS = (
    "alternatively", "another approach", "another way", "a different approach", "different method",
    "instead", "let's try", "let us try", "let me try", "on the other hand", "what if", "switch to",
    "try another", "other approach", "maybe we can", "perhaps we can", "another idea",
)
REFLECTION_KEYWORDS = (
    "wait", "let me check", "let's check", "let me verify", "let's verify", "verify", "double-check",
    "double check", "check", "hmm", "is that right", "is this right", "is that correct", "make sure",
    "confirm", "recheck", "re-check", "mistake", "actually", "hold on", "but wait", "reconsider",
    "sanity check", "did i", "that doesn't", "that does not", "seems off", "not right",
)


def _pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b",
                      re.IGNORECASE)


_TRANSITION = _pattern(TRANSITION_KEYWORDS)
_REFLECTION = _pattern(REFLECTION_KEYWORDS)


def tag_behaviour(text: str) -> str:
    if _TRANSITION.search(text):
        return TRANSITION
    if _REFLECTION.search(text):
        return REFLECTION
    return EXECUTION


def tag_actions(actions: pd.DataFrame) -> pd.Series:
    """Behaviour per action (None for special markers)."""
    tags = actions["text"].map(tag_behaviour)
    return tags.astype(object).where(actions["kind"] != "special", None)


def behaviour_mix(actions: pd.DataFrame, column: str = "cls", tags: pd.Series | None = None) -> pd.DataFrame:
    """Share of each behaviour within each class (rows: class; columns: behaviours, n).
    ``tags``: precomputed :func:`tag_actions` (they do not depend on α or β)."""
    tags = tag_actions(actions) if tags is None else tags
    # one count over integer codes (class × behaviour): a crosstab of a 400k-action table was
    # ~0.15 s of every slider step (tags given as a categorical of BEHAVIOURS cost nothing here)
    behaviour_codes = pd.Categorical(tags, categories=BEHAVIOURS).codes
    tagged = behaviour_codes >= 0
    class_codes, classes = pd.factorize(actions[column][tagged], sort=True)
    behaviour_codes = behaviour_codes[tagged]
    counts = np.bincount(class_codes * len(BEHAVIOURS) + behaviour_codes,
                         minlength=len(classes) * len(BEHAVIOURS)).reshape(len(classes), len(BEHAVIOURS))
    n = counts.sum(axis=1)
    mix = pd.DataFrame(counts / np.maximum(n, 1)[:, None], index=pd.Index(classes, name=column),
                       columns=pd.Index(BEHAVIOURS, name="behaviour"))
    return mix.assign(n=n.astype(np.int64))
