"""One module per CLI command group; imported lazily by `arcjobs.cli`."""
