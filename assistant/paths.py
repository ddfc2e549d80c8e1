"""Where the assistant keeps its data, config and cache (ASSISTANT_HOME and ASSISTANT_CACHE_DIR override them)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

APP_NAME = "vlm-assistant"


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
        for directory in (self.data, self.config, self.cache):
            directory.mkdir(parents=True, exist_ok=True)
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
