"""Fixtures of the Slurm tests: skip all of them, with the reason, when no cluster is reachable."""

import pytest

from slurmlib import slurm_problem


@pytest.fixture(scope="session")
def slurm_cluster():
    """Skip unless a Slurm cluster is reachable (CI: bash .ci/slurm/start.sh)."""
    problem = slurm_problem()
    if problem:
        pytest.skip(f"no Slurm cluster reachable ({problem}); start one with: bash .ci/slurm/start.sh")
