"""Shared fixtures: no network, a private ASSISTANT_HOME per test, tiny models built once per session."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings
from xvfb import xvfb_display, xvfb_server  # noqa: F401  (fixtures: a real virtual X display)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


# Property tests run the same examples on every CI run (no flaky discoveries at merge time);
# HYPOTHESIS_PROFILE=explore searches new examples locally.
hypothesis_settings.register_profile("ci", derandomize=True, deadline=None)
hypothesis_settings.register_profile("explore", derandomize=False, deadline=None, max_examples=1000)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


class NetworkBlocked(RuntimeError):
    pass


LOOPBACK = ("127.0.0.1", "::1", "localhost")
_real_create_connection = socket.create_connection


def _refuse(address, *args, **kwargs):
    """socket.create_connection for loopback only: real servers in tests (assistant serve, llama-server) run there."""
    host = address[0] if isinstance(address, tuple) else address
    if host in LOOPBACK:
        return _real_create_connection(address, *args, **kwargs)
    raise NetworkBlocked(f"tests must not use the network (tried {address!r})")


_real_connect = socket.socket.connect


def _guarded_connect(self, address):
    if self.family == socket.AF_UNIX:
        return _real_connect(self, address)
    host = address[0] if isinstance(address, tuple) else address
    if host in LOOPBACK:
        return _real_connect(self, address)
    raise NetworkBlocked(f"tests must not use the network (tried {address!r})")


@pytest.fixture(autouse=True, scope="session")
def _block_network():
    socket.socket.connect = _guarded_connect  # type: ignore[method-assign]
    socket.create_connection = _refuse  # type: ignore[assignment]
    yield
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.create_connection = _real_create_connection  # type: ignore[assignment]


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One cache dir per test session, so tiny models are built once and reused by every test."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(autouse=True)
def assistant_home(tmp_path, monkeypatch, shared_cache) -> Path:
    """Every test gets its own data and config dirs; the model cache is shared across the session."""
    home = tmp_path / "home"
    monkeypatch.setenv("ASSISTANT_HOME", str(home))
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(shared_cache))
    monkeypatch.delenv("ASSISTANT_DISABLE_PLUGINS", raising=False)
    from assistant.paths import take_notices

    take_notices()  # a notice about another test's home (one process runs them all) is not this test's
    return home
