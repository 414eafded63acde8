"""The memo of rolled blocks: one read per (statement, block), least recently used out first."""

from server.db.rolled_blocks import RolledBlockCache
from server.domain.analytics_rollup import FIVE_MINUTES, HOUR, Block


async def test_each_block_is_read_once_per_statement():
    memo = RolledBlockCache()
    reads: list[Block] = []

    async def read(block: Block) -> int:
        reads.append(block)
        return block.end - block.first

    hours, margin = Block(HOUR, 10, 33), Block(FIVE_MINUTES, 400, 405)
    assert await memo.each("a", [hours, margin], read) == [23, 5]
    assert await memo.each("a", [margin, hours], read) == [5, 23]
    assert reads == [hours, margin]
    await memo.each("b", [hours], read)  # another statement over the same block
    assert reads == [hours, margin, hours]
    memo.clear()
    await memo.each("a", [hours], read)
    assert len(reads) == 4


async def test_the_least_recently_used_entry_goes_first():
    memo = RolledBlockCache(capacity=2)
    reads: list[int] = []

    async def read(block: Block) -> int:
        reads.append(block.first)
        return block.first

    one, two, three = (Block(HOUR, n, n + 1) for n in (1, 2, 3))
    await memo.each("a", [one, two], read)
    await memo.each("a", [one], read)  # `one` is now the most recent
    await memo.each("a", [three], read)  # so `two` goes
    await memo.each("a", [one, two], read)
    assert reads == [1, 2, 3, 2]
