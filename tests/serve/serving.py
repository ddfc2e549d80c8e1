"""Helpers for the server tests: `assistant serve` as a real process on a free loopback port, raw HTTP to it,
the scripted backend plugin installed as a real entry point, PNG data URLs."""

from __future__ import annotations

import base64
import http.client
import io
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

HERE = Path(__file__).parent
REPO = HERE.parent.parent
API_KEY = "test-key-4f1c"


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """A running `assistant serve` process."""

    process: subprocess.Popen
    url: str
    """The API root, http://127.0.0.1:PORT/v1."""
    home: Path
    log: Path
    lines: "queue.Queue[str]" = field(default_factory=queue.Queue)

    @property
    def address(self) -> tuple[str, int]:
        parsed = urlparse(self.url)
        return parsed.hostname or "127.0.0.1", parsed.port or 80

    def client(self, api_key: str = API_KEY, **options: Any) -> Any:
        from openai import OpenAI

        options.setdefault("timeout", 120)
        return OpenAI(base_url=self.url, api_key=api_key, max_retries=0, **options)

    def request(self, method: str, path: str, body: bytes | dict | None = None,
                headers: dict[str, str] | None = None) -> Response:
        """A raw HTTP request (for bodies no SDK would send)."""
        connection = http.client.HTTPConnection(*self.address, timeout=120)
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        sent = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
        sent.update(headers or {})
        try:
            connection.request(method, path, body=data, headers={k: v for k, v in sent.items() if v is not None})
            reply = connection.getresponse()
            return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
        finally:
            connection.close()

    def health(self) -> dict[str, Any]:
        response = self.request("GET", "/health")
        assert response.status == 200, response.body
        return response.json()

    def wait_for(self, condition: Any, what: str, timeout: float = 120) -> dict[str, Any]:
        """Poll /health until `condition(health)` holds (a bounded wait for an event, not a timing check)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.health()
            if condition(state):
                return state
            assert time.monotonic() < deadline, f"the server never reached: {what}; last health {state}"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def server_env(home: Path, cache: Path, plugin_dir: Path | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("ASSISTANT_")}
    env.update(ASSISTANT_HOME=str(home), ASSISTANT_CACHE_DIR=str(cache), HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")
    paths = [str(REPO)] + ([str(plugin_dir), str(HERE)] if plugin_dir else [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def install_scripted_plugin(folder: Path) -> Path:
    """A dist-info folder declaring the scripted backend under the `assistant` entry-point group."""
    info = folder / "assistant_serve_scripted-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: assistant-serve-scripted\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[assistant]\nserve-scripted = scripted_backend\n")
    return folder


def scripted_profile(folder: Path) -> Path:
    path = folder / "scripted.toml"
    path.write_text('description = "scripted replies"\n\n[model]\nbackend = "scripted-serve"\nid = "scripted"\n'
                    '\n[generation]\nmax_new_tokens = 32\n\n[chat]\nsystem_prompt = "You are the profile."\n')
    return path


def start_server(home: Path, cache: Path, *args: str, plugin_dir: Path | None = None,
                 timeout: float = 300) -> Server:
    """Start `python -m assistant serve ARGS --port 0` and wait for its 'serving ... at URL' line."""
    home.mkdir(parents=True, exist_ok=True)
    log = home / "serve-stderr.txt"
    process = subprocess.Popen(
        [sys.executable, "-m", "assistant", "serve", *args, "--port", "0"],
        stdout=subprocess.PIPE, stderr=log.open("w"), text=True, cwd=str(home),
        env=server_env(home, cache, plugin_dir),
    )
    lines: "queue.Queue[str]" = queue.Queue()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            process.kill()
            raise AssertionError(f"the server did not start in {timeout} s: {log.read_text()}") from None
        if not line:
            process.wait(10)
            raise AssertionError(f"the server exited ({process.returncode}): {log.read_text()}")
        if line.startswith("serving "):
            url = line.split(" at ", 1)[1].split(" ", 1)[0]
            return Server(process=process, url=url, home=home, log=log, lines=lines)


def png(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30), kind: str = "PNG") -> bytes:
    """An image file's bytes (a PNG unless `kind` names another Pillow format)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), color).save(buffer, format=kind)
    return buffer.getvalue()


def data_url(data: bytes, kind: str = "png") -> str:
    return f"data:image/{kind};base64,{base64.b64encode(data).decode()}"


def image_part(width: int, height: int, color: tuple[int, int, int] = (200, 30, 30)) -> dict[str, Any]:
    return {"type": "image_url", "image_url": {"url": data_url(png(width, height, color))}}
