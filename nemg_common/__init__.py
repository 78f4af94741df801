"""What every layer may import: the error types (the bottom of the import graph)."""
