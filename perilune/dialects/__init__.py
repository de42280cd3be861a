"""What clients speak: one package per client dialect (schema, to_hub, from_hub, stream encoder)."""
