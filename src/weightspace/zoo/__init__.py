"""Model zoos: building (resumable, batched), the on-disk format, and reading.

What a zoo trains on is a task family (:mod:`weightspace.tasks`); the zoo code knows none of them.
"""

from .builder import build_zoo
from .reader import Zoo, ZooDataset, load_zoo

__all__ = ["Zoo", "ZooDataset", "build_zoo", "load_zoo"]
