"""Fixtures for the server tests: loopback-only HTTP clients, and a module-wide server on the scripted backend.

Each server gets its own ASSISTANT_HOME (the model cache is the session's shared one). The scripted backend
plugin (scripted_backend.py) is installed for a server as a real entry point: a dist-info folder on its
PYTHONPATH, found by importlib.metadata as pip's would be.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.serve.serving import API_KEY, Server, install_scripted_plugin, scripted_profile, start_server

LOOPBACK = ("127.0.0.1", "::1", "localhost")
_create_connection = socket.create_connection
"""The real one, taken before the session's network block replaces it (clients here connect to loopback only)."""


@pytest.fixture(autouse=True)
def loopback_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let HTTP clients (the openai SDK, http.client) connect to this machine; anything else stays blocked."""

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        if address[0] not in LOOPBACK:
            raise RuntimeError(f"tests must not use the network (tried {address!r})")
        return _create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture(scope="module")
def scripted_server(tmp_path_factory: pytest.TempPathFactory, shared_cache: Path) -> Iterator[Server]:
    """A server on the scripted backend (installed as a third-party plugin), with an API key, --max-queue 2,
    a 1 MiB body limit and two hand-made adapters (alpha, beta)."""
    root = tmp_path_factory.mktemp("scripted-serve")
    home = root / "home"
    for name in ("alpha", "beta"):  # peft files present, no metadata: usable adapters of unknown base
        folder = home / "data" / "adapters" / name
        folder.mkdir(parents=True)
        (folder / "adapter_config.json").write_text("{}")
        (folder / "adapter_model.safetensors").write_bytes(b"")
    plugin_dir = install_scripted_plugin(root / "site")
    server = start_server(home, shared_cache, "--profile", str(scripted_profile(root)), "--max-queue", "2",
                          "--api-key", API_KEY, "--max-body-mb", "1", plugin_dir=plugin_dir)
    try:
        yield server
    finally:
        server.stop()
