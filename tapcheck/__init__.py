"""tapcheck: acoustic tap-testing of wooden boards with deep metric learning.

Importing the package is cheap; each command imports what it needs (torch, matplotlib, ...) when
it runs, so ``tapcheck judge`` starts fast.
"""

__version__ = "0.2.0"  # 0.2.0: model format 3 (tapcheck.modelfile.FORMAT_VERSION)
