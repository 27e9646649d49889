"""Backend-independent orchestration: the DAG's cache keys, the run store, planning and
scheduling. `arcjobs.engine.orchestrate` ties them together for the CLI."""
