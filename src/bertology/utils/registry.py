"""One registry per extension point: a name, the thing it builds, and the typed options it takes.

A new masker, objective, model family, task kind, regularizer, distillation loss, quantizer or probe is one
module that decorates its class with `@REGISTRY.register("name", options=OptionsDataclass)`; a config picks it
by that name, and its options section is parsed (and checked, with suggestions) when the file is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ..errors import ConfigError
from .typed import Where, as_where, parse, suggest

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    name: str
    obj: T
    #: the dataclass of its options (None: it takes none)
    options: type | None = None
    #: anything else the extension point wants to know (e.g. a family's export classes)
    info: dict[str, Any] = field(default_factory=dict)


class Registry(Mapping[str, T]):
    """Name -> registered object (a Mapping, so `name in R` and `R[name]` read as a dict)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, options: type | None = None, **info: Any) -> Callable[[T], T]:
        """Decorator: register the decorated class or function under `name`."""

        def wrap(obj: T) -> T:
            self.add(name, obj, options, **info)
            return obj

        return wrap

    def add(self, name: str, obj: T, options: type | None = None, **info: Any) -> None:
        self._entries[name] = Entry(name, obj, options, dict(info))

    def remove(self, name: str) -> None:
        """Forget a registration (tests that register a throw-away component clean up with this)."""
        self._entries.pop(name, None)

    def entry(self, name: str, where: str | Where = "") -> Entry[T]:
        if name not in self._entries:
            known = sorted(self._entries)
            raise ConfigError(f"{as_where(where)}unknown {self.what} {name!r}{suggest(name, known)} "
                              f"(known: {', '.join(known)})")
        return self._entries[name]

    def get_entry(self, name: str) -> Entry[T] | None:
        return self._entries.get(name)

    def options(self, name: str, data: Any = None, where: str | Where = "") -> Any:
        """The options of `name` parsed into its dataclass (None when it takes none and none are given)."""
        entry = self.entry(name, where)
        if entry.options is None:
            if data:
                raise ConfigError(f"{as_where(where)}the {self.what} {name!r} takes no options, got {data!r}")
            return None
        return parse(entry.options, data or {}, where)

    def __getitem__(self, name: str) -> T:
        return self._entries[name].obj

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._entries)})"
