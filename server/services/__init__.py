"""Use cases the adapters call: tasks, steps, handlers, analytics, health, follow, retention.

Each takes and returns domain views; none knows HTTP, GraphQL or the broker. The step rules
they rely on (claim, complete, readiness) sit below them; the handler catalogue in
`server.registry`, persistence in `server.db`, infrastructure in `server.infra`.
"""
