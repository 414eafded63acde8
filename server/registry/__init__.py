"""The handler catalogue: YAML definitions read and checked (`definitions`), kept by namespace,
name and version (`handler_registry`), the bundled examples among them, and written to the
database so tasks can refer to it (`catalogue`)."""
