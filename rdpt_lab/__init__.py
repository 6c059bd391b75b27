"""The mini-distillation lab: a real teacher → student → distilled lineage built on this machine.

``python -m rdpt_lab`` (``make lab``) runs every stage; see ``docs/lab.md``.
"""
