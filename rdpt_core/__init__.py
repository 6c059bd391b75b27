"""rdpt_core: Reasoning Distillation Provenance Tracing, as a pure library.

records → segment → score (one model at a time, token-level cache) → classify → stats.
Importing it never imports Streamlit (nor torch: backends load it on first use).
"""

__version__ = "0.1.0"
