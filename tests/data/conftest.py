"""Fixtures for the data-layer tests."""
import pytest

from data_writers import write_pcam_h5


@pytest.fixture
def pcam_dir(tmp_path):
    """A directory with the six PCam HDF5 files (40 / 12 / 12 patches of 96 px)."""
    directory = tmp_path / "pcam"
    directory.mkdir()
    return str(directory), write_pcam_h5(str(directory))
