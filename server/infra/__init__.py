"""Infrastructure with no business rule: the report cache (Redis or in process), per-process
memos, Redis pub/sub, metrics, logging, garbage-collector tuning, and the protocols (`ports`)
the core is written against and these modules implement."""
