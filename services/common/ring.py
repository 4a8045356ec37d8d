"""Consistent hashing of keys onto Redis shards by their stable names.

ketama-style (uhashring's ketama mode: 160 points per shard on an md5 circle), so clients in any
language that speak ketama place keys identically, and adding a shard only moves keys onto it.
Shards are named, never addressed by IP: a restart, a new host or a new pod IP keeps every key
where it was.
"""

from __future__ import annotations

from collections.abc import Iterable

from uhashring import HashRing


class ShardRing:
    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(names)
        if not self.names:
            raise ValueError("a ring needs at least one shard")
        if len(set(self.names)) != len(self.names):
            raise ValueError("shard names must be unique")
        self._ring = HashRing(nodes=list(self.names), hash_fn="ketama")

    def shard_for(self, key: str) -> str:
        """The name of the shard that owns `key`."""
        node: str = self._ring.get_node(key)
        return node

    def __len__(self) -> int:
        return len(self.names)
