"""Issue 22.8: a symlink in the adapters folder is refused, so training or deleting never reaches files elsewhere."""

from __future__ import annotations

import pytest

from assistant.paths import user_paths
from tests.hostile.kit import cli


@pytest.fixture
def elsewhere(tmp_path):
    user_paths().ensure()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "adapter_model.safetensors").write_bytes(b"precious")
    (outside / "notes.txt").write_text("precious")
    return outside


def _snapshot(folder):
    return sorted((path.name, path.read_bytes()) for path in folder.iterdir())


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--name", "mine", "--overwrite", "--profile", "tiny-smolvlm"],
        ["train", "--name", "mine", "--resume", "--profile", "tiny-smolvlm"],
        ["adapters", "delete", "mine", "--yes"],
        ["adapters", "show", "mine"],
    ],
    ids=["train-overwrite", "train-resume", "delete", "show"],
)
def test_a_symlinked_adapter_folder_is_refused(capsys, elsewhere, args):
    root = user_paths().adapters_dir
    root.mkdir(parents=True)
    (root / "mine").symlink_to(elsewhere, target_is_directory=True)
    before = _snapshot(elsewhere)
    result = cli(capsys, *args)
    assert result.code == 2 and "symbolic link" in result.error_line()
    assert _snapshot(elsewhere) == before and (root / "mine").is_symlink()


def test_a_symlinked_file_inside_an_adapter_is_refused(capsys, elsewhere):
    folder = user_paths().adapters_dir / "mine"
    folder.mkdir(parents=True)
    (folder / "adapter_model.safetensors").symlink_to(elsewhere / "adapter_model.safetensors")
    result = cli(capsys, "train", "--name", "mine", "--overwrite", "--profile", "tiny-smolvlm")
    assert result.code == 2 and "symbolic link" in result.error_line()
    assert (elsewhere / "adapter_model.safetensors").read_bytes() == b"precious"


def test_adapters_list_leaves_links_out(capsys, elsewhere):
    root = user_paths().adapters_dir
    root.mkdir(parents=True)
    (root / "mine").symlink_to(elsewhere, target_is_directory=True)
    result = cli(capsys, "adapters", "list")
    assert result.code == 0 and "mine" not in result.out
