"""The output folder's write order, crash leftovers, a full disk and resume checks
(sampling.writers)."""
import errno
import os
import threading
import time

import numpy as np
import pytest

from hvitgan_tf.errors import UserError
from hvitgan_tf.sampling import writers as W

METADATA = {"name": "hvitgan", "version": 1, "class_names": ["neg", "pos"], "num_classes": 2,
            "image_size": 4, "model_config": {"preset": "tiny"}, "checkpoint": {"path": "x"},
            "exported_at": "2025-01-01T00:00:00Z", "model_dir": "/models/hvitgan/1"}
SETTINGS = {"seed": 0, "truncation": 1.0, "threshold": 0.5, "formats": ["png", "tfrecord"]}


def kept(label, attempt, confidence=0.9):
    name = METADATA["class_names"][label]
    image = np.full((4, 4, 3), 10 * attempt + label, np.uint8)
    return W.KeptSample(id=f"{name}-{attempt:09d}", label=label, class_name=name,
                        attempt=attempt, seed=1000 + attempt, truncation=1.0,
                        confidence=confidence, image=image)


def progress(**counts):
    return {label: W.ClassProgress(kept=k, attempts=a)
            for label, (k, a) in enumerate(counts.values())}


def test_rows_wait_for_their_shard_and_the_manifest_only_lists_existing_files(tmp_path):
    out = W.OutputFolder(str(tmp_path / "out"), METADATA, SETTINGS)
    writer = W.SampleWriter(out, ("png", "tfrecord"), shard_size=3)
    writer.write([kept(0, 0), kept(1, 0)], progress(neg=(1, 1), pos=(1, 1)))
    # Two records in an open shard: PNGs exist, but no row is listed yet and the shard only
    # exists under a hidden temporary name.
    rows, _ = W.read_manifest(out.manifest_path)
    assert rows == []
    visible = sorted(n for n in os.listdir(out.path) if not n.startswith("."))
    assert visible == ["classes.json", "manifest.csv", "neg", "pos", "sampling.json"]
    assert [n for n in os.listdir(out.path) if n.startswith(".tmp-")][0].endswith(".tfrecord")
    writer.write([kept(0, 2)], progress(neg=(2, 3), pos=(1, 1)))  # third record closes it
    rows, clean = W.read_manifest(out.manifest_path)
    assert clean and [r["id"] for r in rows] == ["neg-000000000", "pos-000000000",
                                                "neg-000000002"]
    assert {r["tfrecord"] for r in rows} == {"samples-00000.tfrecord"}
    assert rows[2]["file"] == "neg/neg-000000002.png" and rows[2]["attempt"] == "2"
    writer.write([kept(1, 5)], progress(neg=(2, 3), pos=(2, 6)))
    writer.close()
    rows, _ = W.read_manifest(out.manifest_path)
    assert rows[-1]["tfrecord"] == "samples-00001.tfrecord"
    for row in rows:
        assert os.path.getsize(os.path.join(out.path, row["file"])) > 0
        assert os.path.exists(os.path.join(out.path, row["tfrecord"]))
    state = W.read_json(out.state_path)
    assert state["classes"] == {"neg": {"kept": 2, "attempts": 3}, "pos": {"kept": 2, "attempts": 6}}


def test_reopening_cleans_crash_leftovers_and_resumes_after_the_last_kept(tmp_path):
    out = W.OutputFolder(str(tmp_path / "out"), METADATA, {**SETTINGS, "formats": ["png"]})
    writer = W.SampleWriter(out, ("png",))
    writer.write([kept(0, 0), kept(0, 4, 0.75)], progress(neg=(2, 9), pos=(0, 9)))
    writer.write([kept(1, 3)], progress(neg=(2, 12), pos=(1, 12)))
    # A crash: the state was not rewritten after the last rows, a PNG was renamed but never
    # listed, a temporary file survived, and the last manifest line is torn.
    W.write_json(out.state_path, {**W.read_json(out.state_path),
                                  "classes": {"neg": {"kept": 2, "attempts": 9},
                                              "pos": {"kept": 0, "attempts": 9}}})
    orphan = os.path.join(out.path, "pos", "pos-000000011.png")
    open(orphan, "wb").write(b"png")
    foreign = os.path.join(out.path, "pos", "notes.png")
    open(foreign, "wb").write(b"mine")
    open(os.path.join(out.path, "neg", ".tmp-abc.png"), "wb").write(b"half")
    with open(out.manifest_path, "a") as handle:
        handle.write("pos-000000012,pos,1,0.9")

    again = W.OutputFolder(out.path, METADATA, {**SETTINGS, "formats": ["png"]})
    assert again.resumed
    assert [r["id"] for r in again.rows] == ["neg-000000000", "neg-000000004", "pos-000000003"]
    rows, clean = W.read_manifest(again.manifest_path)
    assert clean and len(rows) == 3  # rewritten without the torn line
    assert not os.path.exists(orphan) and os.path.exists(foreign)
    assert not [n for n in os.listdir(os.path.join(out.path, "neg")) if n.startswith(".tmp-")]
    # neg: the committed counters count its 2 rows, so its rejected attempts 5..8 are known;
    # pos: they do not (0 vs 1 row), so it restarts right after its last kept attempt.
    assert again.progress[0].kept == 2 and again.progress[0].attempts == 9
    assert again.progress[1].kept == 1 and again.progress[1].attempts == 4
    assert again.progress[0].confidence_sum == pytest.approx(0.9 + 0.75)
    # A listed file that disappeared is dropped from the manifest (and will be redone).
    os.remove(os.path.join(out.path, "neg", "neg-000000004.png"))
    third = W.OutputFolder(out.path, METADATA, {**SETTINGS, "formats": ["png"]})
    assert [r["id"] for r in third.rows] == ["neg-000000000", "pos-000000003"]


def test_a_folder_of_another_model_or_settings_is_refused_naming_both(tmp_path):
    path = str(tmp_path / "out")
    W.OutputFolder(path, METADATA, SETTINGS)
    other = {**METADATA, "version": 2, "exported_at": "2025-02-02T00:00:00Z"}
    with pytest.raises(UserError) as error:
        W.OutputFolder(path, other, SETTINGS)
    message = str(error.value)
    assert "holds samples of hvitgan v1 (tiny" in message and "--model is hvitgan v2 (tiny" in message
    # Same name and version, re-exported (another checkpoint): still another model.
    with pytest.raises(UserError, match="holds samples of"):
        W.OutputFolder(path, {**METADATA, "checkpoint": {"path": "y"}}, SETTINGS)
    with pytest.raises(UserError, match=r"threshold 0.5 -> 0.8"):
        W.OutputFolder(path, METADATA, {**SETTINGS, "threshold": 0.8})
    with pytest.raises(UserError, match=r"formats png,tfrecord -> png"):
        W.OutputFolder(path, METADATA, {**SETTINGS, "formats": ["png"]})


def test_foreign_folders_are_refused_but_plain_side_files_are_not(tmp_path):
    side = tmp_path / "side"
    side.mkdir()
    (side / "benchmark-sampling.json").write_text("{}")
    W.OutputFolder(str(side), METADATA, SETTINGS)  # fine: folder:/tfrecord: ignore such files

    data = tmp_path / "data"
    (data / "neg").mkdir(parents=True)
    (data / "neg" / "a.png").write_bytes(b"x")
    with pytest.raises(UserError, match="holds data not written by 'hvitgan-tf sample'"):
        W.OutputFolder(str(data), METADATA, SETTINGS)

    other = tmp_path / "other"
    other.mkdir()
    W.write_manifest(str(other / "manifest.csv"), [W.format_row(
        kept(0, 1), {"name": "pcam", "version": 4}, "neg/neg-000000001.png", "")])
    with pytest.raises(UserError, match=r"another model \(pcam v4; --model is hvitgan v1"):
        W.OutputFolder(str(other), METADATA, SETTINGS)

    with pytest.raises(UserError, match="cannot be a folder name"):
        W.check_class_names(["ok", "../up"])


def test_background_writer_surfaces_a_failure_of_its_thread(tmp_path):
    out = W.OutputFolder(str(tmp_path / "out"), METADATA, {**SETTINGS, "formats": ["png"]})
    background = W.BackgroundWriter(W.SampleWriter(out, ("png",)))
    broken = kept(0, 0)
    broken.image = np.zeros((4, 4, 7), np.uint8)  # PIL cannot encode 7 channels
    background.submit([broken], progress(neg=(1, 1), pos=(0, 0)))
    with pytest.raises(Exception):
        background.finish()
    assert W.read_manifest(out.manifest_path)[0] == []


# -- a full disk -----------------------------------------------------------------------------

def listed_and_present(out):
    """``(files the manifest lists, image files on disk)``, both relative to OUT; and the
    temporary files left anywhere in it."""
    rows, clean = W.read_manifest(out.manifest_path)
    assert clean, "the manifest ends in a torn row"
    listed = {row["file"] for row in rows if row["file"]} | {row["tfrecord"] for row in rows
                                                             if row["tfrecord"]}
    present, temporary = set(), []
    for root, _, files in os.walk(out.path):
        for name in files:
            relative = os.path.relpath(os.path.join(root, name), out.path)
            if name.startswith(".tmp-"):
                temporary.append(relative)
            elif name.endswith((".png", ".tfrecord")):
                present.add(relative)
    return listed, present, temporary


def test_a_full_disk_mid_batch_leaves_every_complete_png_listed(tmp_path, disk_full_after):
    out = W.OutputFolder(str(tmp_path / "out"), METADATA, {**SETTINGS, "formats": ["png"]})
    writer = W.SampleWriter(out, ("png",))
    writer.write([kept(0, 0), kept(1, 0)], progress(neg=(1, 1), pos=(1, 1)))
    disk_full_after(2)
    with pytest.raises(W.NoSpaceLeft) as error:
        writer.write([kept(0, 1), kept(1, 1), kept(0, 2), kept(1, 2)],
                     progress(neg=(3, 3), pos=(3, 3)))
    failed = os.path.join(out.path, "neg", "neg-000000002.png")
    assert str(error.value) == (
        f"no space left on device writing {failed}: 4 images kept in {out.path} (each listed "
        "in its manifest.csv); free some space and rerun the same command to continue")
    listed, present, temporary = listed_and_present(out)
    assert listed == present and len(present) == 4 and not temporary
    writer.close()  # the sampler still closes a failed writer: it must write nothing more
    assert W.read_json(out.state_path)["classes"]["neg"] == {"kept": 1, "attempts": 1}


def test_a_manifest_row_cut_short_by_a_full_disk_is_taken_back_with_its_png(tmp_path,
                                                                           monkeypatch):
    out = W.OutputFolder(str(tmp_path / "out"), METADATA, {**SETTINGS, "formats": ["png"]})
    writer = W.SampleWriter(out, ("png",))
    writer.write([kept(0, 0)], progress(neg=(1, 1), pos=(0, 0)))
    real_write = os.write
    manifest_fd = []

    def filling_write(fd, data):  # half of a manifest row fits, then the disk is full
        if os.path.realpath(f"/proc/self/fd/{fd}") == os.path.realpath(out.manifest_path):
            manifest_fd.append(fd)
            real_write(fd, bytes(data[:len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", filling_write)
    with pytest.raises(W.NoSpaceLeft, match=f"writing {out.manifest_path}: 1 images kept"):
        writer.write([kept(1, 0)], progress(neg=(1, 1), pos=(1, 1)))
    monkeypatch.undo()
    assert manifest_fd
    listed, present, temporary = listed_and_present(out)
    assert listed == present == {"neg/neg-000000000.png"} and not temporary


def test_a_full_disk_under_the_tfrecord_writer_drops_the_open_shard_and_its_pngs(
        tmp_path, monkeypatch):
    import tensorflow as tf

    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full")
    out = W.OutputFolder(str(tmp_path / "out"), METADATA, SETTINGS)
    writer = W.SampleWriter(out, ("png", "tfrecord"), shard_size=2)
    writer.write([kept(0, 0), kept(1, 0)], progress(neg=(1, 1), pos=(1, 1)))  # one shard
    real = tf.io.TFRecordWriter
    monkeypatch.setattr(tf.io, "TFRecordWriter", lambda path: real("/dev/full"))
    with pytest.raises(W.NoSpaceLeft) as error:
        writer.write([kept(0, 1)], progress(neg=(2, 2), pos=(1, 1)))
        writer.close()  # a record this small may only fail when the shard is flushed
    assert f"writing {os.path.join(out.path, 'samples-00001.tfrecord')}: 2 images kept" in \
        str(error.value)
    listed, present, temporary = listed_and_present(out)
    assert listed == present == {"neg/neg-000000000.png", "pos/pos-000000000.png",
                                 "samples-00000.tfrecord"}
    assert not temporary


def test_after_a_failed_batch_nothing_more_is_written_neither_queued_batches_nor_close(
        tmp_path):
    class Stub:
        def __init__(self):
            self.release = threading.Event()
            self.failed_once = threading.Event()
            self.written = []

        def write(self, samples, progress):
            if not self.written and not self.failed_once.is_set():
                self.release.wait(10)
                self.failed_once.set()
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written.append(samples)

        def close(self):
            self.written.append("closed")

    stub = Stub()
    background = W.BackgroundWriter(stub, depth=2)
    background.submit(["batch 1"], {})
    background.submit(["batch 2"], {})  # queued while batch 1 is being written
    stub.release.set()
    stub.failed_once.wait(10)
    time.sleep(0.05)
    with pytest.raises(OSError):
        background.submit(["batch 3"], {})
    background.finish()
    assert stub.written == []  # neither batch 2 nor a close after the failure


def test_a_full_disk_while_opening_the_folder_is_one_clear_error(tmp_path, monkeypatch):
    def no_space(path, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path + ".tmp")

    monkeypatch.setattr(W, "write_json", no_space)
    path = str(tmp_path / "out")
    with pytest.raises(W.NoSpaceLeft, match=f"writing {path}/classes.json: 0 images kept"):
        W.OutputFolder(path, METADATA, SETTINGS)
