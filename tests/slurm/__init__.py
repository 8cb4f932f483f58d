"""A private one-node SLURM cluster that tests start and stop themselves (see cluster.py and
docs/slurm-tests.md)."""
