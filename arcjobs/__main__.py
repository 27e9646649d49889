"""`python -m arcjobs` is the same as the `arcjobs` console script (used where no venv is active)."""

from arcjobs.cli import main

main()
