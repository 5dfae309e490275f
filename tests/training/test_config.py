"""TrainConfig's curriculum follows the run's dim unless its ends are set (issue 17, item 2)."""

import pytest

from icsim.errors import InputError
from icsim.training import Curriculum, TrainConfig


def test_curriculum_ends_follow_dim_unless_set():
    small = TrainConfig(dim=5)
    assert small.n_points == 11 and small.active(0) == (5, 11) and small.active(10**6) == (5, 11)
    tiny = TrainConfig(dim=3)  # starts (5 dims, 11 points) above the followed ends are lowered
    assert tiny.active(0) == (3, 7) and tiny.n_points == 7
    garg = TrainConfig()  # d = 20: Garg et al.'s 5→20 dims, 11→41 points
    assert garg.n_points == 41 and garg.active(0) == (5, 11) and garg.active(10**6) == (20, 41)
    grown = TrainConfig(dim=8, curriculum=Curriculum(dims_start=2, points_start=5, interval=10))
    assert grown.active(0) == (2, 5) and grown.active(10**4) == (8, 17)
    explicit = TrainConfig(
        dim=8, curriculum=Curriculum(dims_start=2, dims_end=4, points_start=5, points_end=9)
    )
    assert explicit.active(10**6) == (4, 9) and explicit.n_points == 9
    assert TrainConfig(dim=8, curriculum=Curriculum(enabled=False)).active(0) == (8, 17)


def test_explicit_curriculum_ends_are_still_checked():
    with pytest.raises(InputError, match="dims_end=5 exceeds dim=3"):
        TrainConfig(dim=3, curriculum=Curriculum(dims_end=5))
    with pytest.raises(InputError, match="must not exceed end values"):
        Curriculum(points_start=20, points_end=11)
