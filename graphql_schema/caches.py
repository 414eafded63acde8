"""A least-recently-used cache keyed by request text, bounded by entries AND by the total
size of that text (a few long documents, mostly comment, must not hold memory that many
short ones would not)."""

from collections import OrderedDict
from typing import Generic, TypeVar

V = TypeVar("V")


class TextCache(Generic[V]):
    """Maps a text key (plus any hashable detail) to a value, within both budgets."""

    def __init__(self, max_entries: int, max_chars: int) -> None:
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.chars = 0
        self.items: OrderedDict[tuple[str, object], V] = OrderedDict()

    def __len__(self) -> int:
        return len(self.items)

    def get(self, text: str, detail: object = None) -> V | None:
        key = (text, detail)
        value = self.items.get(key)
        if value is not None:
            self.items.move_to_end(key)
        return value

    def put(self, text: str, value: V, detail: object = None) -> None:
        """Remembers `value`; a text longer than the whole budget is not kept at all."""
        if len(text) > self.max_chars:
            return
        key = (text, detail)
        if key in self.items:
            self.items.move_to_end(key)
            self.items[key] = value
            return
        self.items[key] = value
        self.chars += len(text)
        while len(self.items) > self.max_entries or self.chars > self.max_chars:
            (old_text, _), _ = self.items.popitem(last=False)
            self.chars -= len(old_text)
