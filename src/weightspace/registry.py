"""Name -> object registries for the pluggable parts (task families, experiment families).

Built-in entries are imported on first use, so listing names costs no import; user code adds
entries with :meth:`Registry.register`; an installed package can offer entries to every process
through an entry-point group, each entry naming a class that is instantiated on first use.
"""

from __future__ import annotations

from importlib import import_module
from importlib.metadata import entry_points

from .errors import ConfigError


class Registry:
    def __init__(
        self,
        what: str,
        package: str,
        built_in: dict[str, tuple[str, str]],
        group: str | None = None,
        instantiate: bool = True,
        error: type[Exception] = ConfigError,
    ):
        self.what = what  # e.g. "task family", for messages
        self.package = package
        self.built_in = dict(built_in)  # name -> (module relative to package, class)
        self.group = group
        self.instantiate = instantiate  # entries are instances of their class (False: the classes)
        self.error = error  # raised for an unknown name
        self.loaded: dict[str, object] = {}

    def _entry_points(self) -> dict:
        return {} if self.group is None else {e.name: e for e in entry_points(group=self.group)}

    def register(self, item, replace: bool = False):
        """Make ``item`` available by ``item.name``."""
        if not replace and (item.name in self.built_in or item.name in self.loaded):
            raise ValueError(f"a {self.what} named {item.name!r} is already registered")
        self.loaded[item.name] = item
        return item

    def names(self) -> list[str]:
        names = [*self.built_in, *(n for n in self.loaded if n not in self.built_in)]
        return names + [n for n in self._entry_points() if n not in names]

    def get(self, name: str):
        """The entry ``name``; an unknown name is one clear error that lists the known ones."""
        if name in self.loaded:
            return self.loaded[name]
        if name in self.built_in:
            module, cls = self.built_in[name]
            item = getattr(import_module(f".{module}", self.package), cls)
            self.loaded[name] = item() if self.instantiate else item
            return self.loaded[name]
        entry = self._entry_points().get(name)
        if entry is not None:
            item = entry.load()
            return self.register(item() if self.instantiate else item)
        raise self.error(f"unknown {self.what} {name!r}; choose from {', '.join(self.names())}")
