"""The outcomes an execution can have: the `status` vocabulary of executions.jsonl.

Its own leaf module because both sides use it: the sandbox writes these statuses, the ARC
domain (metrics, relabelling) reads them back, and neither should import the other for it.
"""

STATUSES = (
    "ok",
    "syntax_error",
    "runtime_error",
    "timeout",
    "memory",
    "invalid_output",
    "unsafe",
    "crash",
)
