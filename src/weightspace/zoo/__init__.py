"""Model zoos: building (resumable, batched), the on-disk format, and reading."""

from .builder import ZooConfig, build_zoo
from .cartpole import CartPoleZoo
from .digits import DigitsZoo
from .formal_languages import FormalLanguagesZoo
from .reader import Zoo, ZooDataset, load_zoo

#: Zoo kinds buildable with ``weightspace zoo build KIND``.
KINDS = {kind.name: kind for kind in (FormalLanguagesZoo(), DigitsZoo(), CartPoleZoo())}

__all__ = ["KINDS", "Zoo", "ZooConfig", "ZooDataset", "build_zoo", "load_zoo"]
