"""Atomic files, PNG metadata, the output-folder check and the weights-file check."""

from __future__ import annotations

import os
import shutil

import pytest
from PIL import Image

from nulltta.loading import CorruptWeightsError, check_weights_files, load_pipeline
from nulltta.run.errors import RunError
from nulltta.run.files import (
    atomic_write,
    check_writable,
    png_bytes,
    read_png_metadata,
    remove_temporary_files,
)


def test_an_atomic_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "a.txt"
    atomic_write(path, b"one")
    atomic_write(path, b"two")
    assert path.read_bytes() == b"two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_temporary_files_of_a_killed_writer_are_removed(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / ".p0000-s0.png.x1y2.tmp").write_bytes(b"half a png")
    (tmp_path / "images" / "p0000-s0.png").write_bytes(b"a png")
    assert remove_temporary_files(tmp_path) == 1
    assert [p.name for p in (tmp_path / "images").iterdir()] == ["p0000-s0.png"]


def test_png_metadata_round_trips_and_the_encoding_is_deterministic(tmp_path):
    image = Image.new("RGB", (4, 4), (10, 20, 30))
    metadata = {"prompt": "42", "seed": 3, "reward": float("nan"), "config": {"n_max": 2}}
    data = png_bytes(image, metadata)
    assert png_bytes(image, dict(metadata)) == data
    (tmp_path / "a.png").write_bytes(data)
    read = read_png_metadata(tmp_path / "a.png")
    assert read["prompt"] == "42" and read["seed"] == 3 and read["config"] == {"n_max": 2}
    assert read["reward"] != read["reward"]  # NaN survives


def test_an_output_folder_under_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(RunError, match=r"cannot write to the output folder .*file/out.*--out"):
        check_writable(tmp_path / "file" / "out")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes to read-only folders")
def test_a_read_only_output_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        with pytest.raises(RunError, match="cannot write to the output folder"):
            check_writable(folder)
    finally:
        folder.chmod(0o700)


@pytest.mark.parametrize(
    ("component", "damage"),
    [
        ("unet/diffusion_pytorch_model.safetensors", "truncate"),
        ("text_encoder/model.safetensors", "truncate"),
        ("vae/diffusion_pytorch_model.safetensors", "garbage"),
    ],
)
def test_a_corrupt_weights_file_is_named(tiny_model, tmp_path, component, damage):
    folder = tmp_path / "model"
    shutil.copytree(tiny_model, folder)
    path = folder / component
    if damage == "truncate":  # an interrupted download
        os.truncate(path, path.stat().st_size - 100)
    else:
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00<html>not found</html>")
    with pytest.raises(CorruptWeightsError, match=f"weights file {path} is corrupt or truncated"):
        load_pipeline(folder)


def test_intact_weights_pass_the_check(tiny_model):
    check_weights_files(tiny_model)


def test_a_rank_that_cannot_see_rank_0s_folder_stops_with_the_fix(tmp_path):
    from nulltta.run.shared import clear_marks, leave_mark, wait_for_mark

    leave_mark(tmp_path, "a1")
    wait_for_mark(tmp_path, "a1", timeout=0)
    with pytest.raises(RunError, match="file system every node shares"):
        wait_for_mark(tmp_path, "b2", timeout=0.1)  # another node's local disk
    clear_marks(tmp_path)
    assert not list((tmp_path / "rows").iterdir())
