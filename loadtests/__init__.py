"""Load tests and HTTP benchmarks of the pith server (outside tests/: never gate CI)."""
