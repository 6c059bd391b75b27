"""The lab: a real teacher → student → distilled lineage built on this machine, with a teacher
style known in advance (ground truth for the provenance classes), and the paper's selection
experiment. ``python -m rdpt_lab`` (``make lab``) runs every stage; see ``docs/lab.md``.
"""
