"""The model zoo: one module per model, each registering its ModelSpec."""
