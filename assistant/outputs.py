"""Files the user asks a command to write (exports, screenshots, rendered pages): never a silent overwrite.

An existing path is refused unless `force` (the commands' --force); a symlink is always refused, so nothing is
written through one; the content goes to a temporary file in the same folder that is renamed into place, so a
crash or a full disk never leaves half a file. Written files are private to the user (0600).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from .errors import AssistantError

OUTPUT_MODE = 0o600


def check_output(path: str | Path, force: bool = False) -> Path:
    """The path to write, after refusing a symlink, a non-file, an existing file (without force), a missing folder."""
    output = Path(path).expanduser()
    try:
        info = os.stat(output, follow_symlinks=False)
    except FileNotFoundError:
        info = None
    except OSError as error:
        raise AssistantError(f"cannot write {output}: {error.strerror or error}; check the path") from None
    if info is not None:
        if stat.S_ISLNK(info.st_mode):
            raise AssistantError(f"{output} is a symbolic link; refusing to write through it, choose another path")
        if not stat.S_ISREG(info.st_mode):
            raise AssistantError(f"{output} exists and is not a regular file; choose another path")
        if not force:
            raise AssistantError(f"{output} already exists; pass --force to replace it, or choose another path")
    if not output.parent.is_dir():
        raise AssistantError(f"cannot write {output}: folder {output.parent} does not exist; create it first")
    return output


def write_output(path: str | Path, data: bytes | str, force: bool = False) -> Path:
    """Write a file the user asked for, atomically (see the module docstring); returns the path written."""
    output = check_output(path, force)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    try:
        handle, temporary = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.", suffix=".partial")
    except OSError as error:
        raise AssistantError(
            f"cannot write {output}: {error.strerror or error}; check the folder's permissions"
        ) from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, OUTPUT_MODE)
        if not force and (output.exists() or output.is_symlink()):  # appeared meanwhile: still no overwrite
            raise AssistantError(f"{output} already exists; pass --force to replace it, or choose another path")
        os.replace(temporary, output)  # replaces a path (even a symlink made meanwhile), never writes through it
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise AssistantError(f"cannot write {output}: {error.strerror or error}; check free disk space") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return output


def save_image_output(image: Any, path: str | Path, force: bool = False, image_format: str | None = None) -> Path:
    """Encode a PIL image (format from `image_format` or the file name) and write it like `write_output`."""
    output = check_output(path, force)
    from PIL import Image

    name = image_format or Image.registered_extensions().get(output.suffix.lower())
    if name is None:
        raise AssistantError(f"cannot write {output}: unknown image type; use a .png or .jpg name")
    buffer = io.BytesIO()
    try:
        picture = image.convert("RGB") if name == "JPEG" and image.mode not in ("RGB", "L") else image
        picture.save(buffer, format=name)
    except (ValueError, OSError, KeyError) as error:
        raise AssistantError(f"cannot write {output} as {name}: {error}; use a .png or .jpg name") from None
    return write_output(output, buffer.getvalue(), force)
