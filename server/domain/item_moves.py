"""History rows of map items: what an item's move writes in the task's history.

An item's claim, completion, retry and failure each append a row to the transitions table,
under the map step's id and name, with the item's statuses and `metadata.item` (its index) and
`metadata.attempt`. The rows are there for audits and proofs (how many items ran at once, how
often one was retried) and are read per step (`server.services.queries.item_transitions`).

The task's history, its streams and its events leave them out: a map of 10,000 items writes
more than 20,000 of them, which would bury the task's own moves. They are told apart by their
reason, one of `ITEM_REASONS`.
"""

ITEM_CLAIMED = "item claimed"
ITEM_COMPLETE = "item complete"
ITEM_RETRYING = "item retrying"
ITEM_FAILED = "item failed"

ITEM_REASONS = (ITEM_CLAIMED, ITEM_COMPLETE, ITEM_RETRYING, ITEM_FAILED)
"""The reasons of item rows, and only of item rows."""
