"""The --data strings and option checks (no TensorFlow needed)."""
import os
import subprocess
import sys

import pytest

from hvitgan_tf.data.forms import (SOURCE_FORMS, DataError, check_split_fractions,
                                   check_subset_options, parse_source_spec)
from hvitgan_tf.errors import UserError


def test_every_form_parses():
    assert parse_source_spec("demo") == ("demo", "")
    assert parse_source_spec(" tfds:patch_camelyon ") == ("tfds", "patch_camelyon")
    assert parse_source_spec("pcam-h5:/data/pcam") == ("pcam-h5", "/data/pcam")
    assert parse_source_spec("folder:~/patches") == ("folder",
                                                     os.path.expanduser("~/patches"))
    assert parse_source_spec("tfrecord:/x/*.tfrecord") == ("tfrecord", "/x/*.tfrecord")


@pytest.mark.parametrize("spec", ["pcam", "hdf5:/x", "Demo", "images:/x", ""])
def test_unknown_prefix_lists_the_valid_forms(spec):
    with pytest.raises(DataError) as error:
        parse_source_spec(spec)
    for form in SOURCE_FORMS:
        assert form in str(error.value)
    assert isinstance(error.value, UserError)


def test_a_bare_directory_gets_a_folder_hint(tmp_path):
    with pytest.raises(DataError, match=f"folder:{tmp_path}"):
        parse_source_spec(str(tmp_path))


def test_a_prefix_without_value_is_an_error():
    with pytest.raises(DataError, match="needs a value after 'folder:'"):
        parse_source_spec("folder:")


def test_subset_options():
    check_subset_options(None, None)
    check_subset_options(1.0, None)
    check_subset_options(None, 2)
    with pytest.raises(DataError, match="not both"):
        check_subset_options(0.5, 10)
    for fraction in (0, -0.1, 1.5):
        with pytest.raises(DataError, match="--fraction"):
            check_subset_options(fraction, None)
    with pytest.raises(DataError, match="--limit"):
        check_subset_options(None, 0)


def test_split_fractions():
    assert check_split_fractions([0.7, 0.2, 0.1]) == (0.7, 0.2, 0.1)
    assert check_split_fractions((1, 0, 0)) == (1.0, 0.0, 0.0)
    for bad in ([0.8, 0.1], [0.8, 0.3, 0.1], [0, 0.5, 0.5], [1.1, -0.1, 0], "abc"):
        with pytest.raises(DataError):
            check_split_fractions(bad)


def test_cli_modules_and_data_package_do_not_import_tensorflow():
    # `hvitgan-tf data --help` and every command's option parsing must stay fast (STYLE.md).
    code = ("import sys, hvitgan_tf.data, hvitgan_tf.data.forms, hvitgan_tf.cli.options, "
            "hvitgan_tf.cli.data_cmd; "
            "loaded = [m for m in ('tensorflow', 'keras', 'h5py', 'PIL') if m in sys.modules]; "
            "print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
