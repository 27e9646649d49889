"""The ARC domain: grids, tasks and datasets, augmentation, BARC prompts, metrics, relabelling.

Pure Python + numpy (no torch): the sandbox image imports it too.
"""
