"""Fixtures shared by the checkpoint tests: a finished run of the test module's tiny `CFG`."""

import shutil

import pytest

from icsim.training import Trainer


@pytest.fixture(scope="module")
def trained(tmp_path_factory, request):
    """A finished run of the module's `CFG` (built once per module, copied per test)."""
    run = tmp_path_factory.mktemp("trained") / "run"
    Trainer(request.module.CFG, run, quiet=True).train()
    return run


@pytest.fixture
def run(trained, tmp_path):
    shutil.copytree(trained, tmp_path / "run")
    return tmp_path / "run"
