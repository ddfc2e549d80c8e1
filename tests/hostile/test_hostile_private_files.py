"""Issue 22.1: everything the assistant keeps is private (dirs 0700, files 0600) whatever the umask."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from assistant.paths import user_paths
from assistant.permissions import add_to_allow_list
from tests.hostile.kit import cli, cli_process


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)


def _loose_entries(*roots: Path) -> list[str]:
    """Every directory not 0700 and every file not 0600 under the roots (the roots included)."""
    loose = []
    for root in roots:
        if _mode(root) != 0o700:
            loose.append(f"{root} {oct(_mode(root))}")
        for folder, dirs, files in os.walk(root):
            for name in dirs:
                if _mode(Path(folder, name)) != 0o700:
                    loose.append(f"{folder}/{name} {oct(_mode(Path(folder, name)))}")
            for name in files:
                if _mode(Path(folder, name)) != 0o600:
                    loose.append(f"{folder}/{name} {oct(_mode(Path(folder, name)))}")
    return loose


def test_a_fresh_install_is_private_even_with_an_open_umask(tmp_path):
    image = tmp_path / "x.png"
    from tests.helpers import make_image

    make_image(image)
    result = cli_process("ask", "--profile", "tiny-smolvlm", "--max-tokens", "3", "--image", str(image), "hi",
                         umask=0)
    assert result.code == 0, result.err
    paths = user_paths()
    assert paths.store_file.exists() and paths.log_file.exists()
    add_to_allow_list(user_paths().config_file, "screenshot")  # writes config.toml (the allow-list)
    assert paths.config_file.exists()
    old = os.umask(0)
    try:
        add_to_allow_list(paths.config_file, "pdf_page")  # a rewrite under an open umask stays private too
    finally:
        os.umask(old)
    assert _loose_entries(paths.data, paths.config) == []


def test_an_older_install_is_made_private_on_start_with_a_notice(capsys):
    paths = user_paths()
    for folder in (paths.data, paths.config, paths.data / "images"):
        folder.mkdir(parents=True)
        os.chmod(folder, 0o755)
    for file in (paths.store_file, paths.log_file, paths.config_file, Path(f"{paths.store_file}-shm")):
        file.write_bytes(b"")
        os.chmod(file, 0o644)
    os.chmod(paths.store_file.parent / "assistant.sqlite3-shm", 0o444)  # left by a read-only spell: blocks writes
    result = cli(capsys, "chats", "list")
    assert result.code == 0, result.err
    notices = [line for line in result.err.splitlines() if line.startswith("notice:")]
    assert len(notices) == 1 and str(paths.data) in notices[0] and "private" in notices[0], result.err
    assert _loose_entries(paths.data, paths.config) == []


def test_a_private_install_gives_no_notice(capsys):
    assert cli(capsys, "chats", "list").code == 0
    from assistant import paths as paths_module

    paths_module._checked.clear()  # as on a new start
    result = cli(capsys, "chats", "list")
    assert result.code == 0 and "notice" not in result.err, result.err


def test_a_fifo_in_place_of_the_log_does_not_block_a_command(capsys):
    paths = user_paths().ensure()
    os.mkfifo(paths.log_file)
    result = cli_process("chats", "list", timeout=120)  # before: blocked opening the FIFO for writing
    assert result.code == 0, result.err
