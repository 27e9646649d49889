"""arcjobs: containerised batch jobs for test-time training on ARC-AGI."""

__version__ = "0.1.0"
