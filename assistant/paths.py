"""Where the assistant keeps its data, config and cache (ASSISTANT_HOME and ASSISTANT_CACHE_DIR override them).

Everything the assistant keeps is private to the user whatever the umask: directories 0700, files 0600
(chats, the log and the config may hold anything the user typed or showed the model).
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "vlm-assistant"
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600

log = logging.getLogger(__name__)

_notices: list[str] = []
_checked: set[Path] = set()
_notice_lock = threading.Lock()


def make_private_dir(path: Path) -> Path:
    """Create a directory (and its missing parents) readable only by the user; an existing one is left as it is."""
    path = Path(path)
    if not path.is_dir():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:
            pass
        else:
            os.chmod(path, PRIVATE_DIR_MODE)  # mkdir's mode is masked by the umask
    return path


def touch_private(path: Path) -> Path:
    """Create an empty file only the user can read (never through a symlink); an existing one keeps its content."""
    # O_NONBLOCK: a FIFO put in the file's place fails at once instead of blocking every start.
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{path} is not a regular file")
        if stat.S_IMODE(info.st_mode) & 0o077:
            os.fchmod(fd, PRIVATE_FILE_MODE)
    finally:
        os.close(fd)
    return Path(path)


def write_private(path: Path, data: bytes | str) -> None:
    """Replace a file's content atomically (temporary file + rename) with a file only the user can read."""
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, PRIVATE_FILE_MODE)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def take_notices() -> list[str]:
    """Lines for the user about files made private on this start (each said once); the surfaces show them."""
    with _notice_lock:
        lines = list(_notices)
        _notices.clear()
    return lines


def _owned_loose(path: Path, info: os.stat_result) -> bool:
    return info.st_uid == os.geteuid() and bool(stat.S_IMODE(info.st_mode) & 0o077)


def _make_existing_private(directory: Path) -> bool:
    """Fix an install made before files were private: the folder 0700, the files and folders in it 0600/0700.

    Returns whether the folder itself was open to other users (the real exposure: the caller tells the user);
    loose files inside an already private folder are fixed quietly (logged). Only entries the user owns;
    symlinks are never followed.
    """
    with _notice_lock:
        if directory in _checked:
            return False
        _checked.add(directory)
    try:
        info = os.stat(directory, follow_symlinks=False)
    except OSError:
        return False
    if not stat.S_ISDIR(info.st_mode):
        return False
    exposed = _owned_loose(directory, info)
    fixed: list[str] = []
    try:
        if exposed:
            os.chmod(directory, PRIVATE_DIR_MODE)
            fixed.append(str(directory))
        with os.scandir(directory) as entries:
            for entry in entries:
                entry_info = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(entry_info.st_mode) or not _owned_loose(Path(entry.path), entry_info):
                    continue
                mode = PRIVATE_DIR_MODE if stat.S_ISDIR(entry_info.st_mode) else PRIVATE_FILE_MODE
                if stat.S_ISDIR(entry_info.st_mode) or stat.S_ISREG(entry_info.st_mode):
                    os.chmod(entry.path, mode)
                    fixed.append(entry.name)
    except OSError as error:
        log.warning("could not make %s private: %s", directory, error)
        return False
    if fixed:
        log.info("made private (were readable by other users): %s", ", ".join(fixed))
    return exposed


@dataclass(frozen=True)
class UserPaths:
    """The three user directories. Created on first use, never at import time."""

    data: Path
    config: Path
    cache: Path

    @property
    def store_file(self) -> Path:
        return self.data / "assistant.sqlite3"

    @property
    def images_dir(self) -> Path:
        return self.data / "images"

    @property
    def adapters_dir(self) -> Path:
        return self.data / "adapters"

    @property
    def profiles_dir(self) -> Path:
        return self.config / "profiles"

    @property
    def config_file(self) -> Path:
        return self.config / "config.toml"

    @property
    def log_file(self) -> Path:
        return self.data / "assistant.log"

    @property
    def models_dir(self) -> Path:
        """Locally built models (the tiny offline profiles and the benchmark model)."""
        return self.cache / "models"

    def ensure(self) -> "UserPaths":
        """Create the three directories, private (0700); an older install's data and config are made private."""
        for directory in (self.data, self.config, self.cache):
            try:
                make_private_dir(directory)
            except OSError as error:
                from .errors import AssistantError

                raise AssistantError(
                    f"cannot create the folder {directory}: {error.strerror or error}; "
                    "check its permissions or set ASSISTANT_HOME to a writable folder"
                ) from None
        # Never the cache: ASSISTANT_CACHE_DIR may name a shared folder.
        exposed = [str(directory) for directory in (self.data, self.config) if _make_existing_private(directory)]
        if exposed:
            with _notice_lock:
                _notices.append(
                    f"notice: {' and '.join(exposed)} and the files in them were readable by other users; "
                    "they are private now (folders 0700, files 0600)"
                )
        return self


def user_paths() -> UserPaths:
    """The user's directories: `$ASSISTANT_HOME/{data,config,cache}` when set, else the platform's own."""
    home = os.environ.get("ASSISTANT_HOME")
    cache_override = os.environ.get("ASSISTANT_CACHE_DIR")
    if home:
        root = Path(home).expanduser()
        paths = UserPaths(data=root / "data", config=root / "config", cache=root / "cache")
    else:
        import platformdirs

        paths = UserPaths(
            data=Path(platformdirs.user_data_dir(APP_NAME)),
            config=Path(platformdirs.user_config_dir(APP_NAME)),
            cache=Path(platformdirs.user_cache_dir(APP_NAME)),
        )
    if cache_override:
        paths = UserPaths(data=paths.data, config=paths.config, cache=Path(cache_override).expanduser())
    return paths
