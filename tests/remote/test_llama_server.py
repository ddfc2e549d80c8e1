"""The `openai` backend against a third-party server: llama.cpp's llama-server serving our SmolVLM build as GGUF.

The GGUF is converted from the `bench-smolvlm-256m` build (SmolVLM-256M-Instruct's architecture, random weights):
llama.cpp refuses the tiny build's image prompt with "Invalid token", so only the real architecture proves images.

This proves the client speaks the protocol other servers speak, not only our own `assistant serve`. Building
llama-server takes ~15 minutes on 2 cores, so `.ci/run` builds it in a separate step (.ci/llama-server-recipe.sh)
and runs these tests with `pytest -m llama_server`, pointing LLAMA_SERVER_DIR at the recipe's work dir. Without
that directory they are skipped with the reason.
"""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from PIL import Image

from assistant import Assistant
from assistant.cli import main
from assistant.errors import AssistantError

WORK = Path(os.environ.get("LLAMA_SERVER_DIR", "/nonexistent"))
BINARY = WORK / "build" / "bin" / "llama-server"
TEXT, MMPROJ = WORK / "gguf" / "text.gguf", WORK / "gguf" / "mmproj.gguf"

pytestmark = [
    pytest.mark.llama_server,
    pytest.mark.skipif(
        not (BINARY.is_file() and TEXT.is_file() and MMPROJ.is_file()),
        reason="set LLAMA_SERVER_DIR to a built .ci/llama-server-recipe.sh work dir (a separate CI step)",
    ),
]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(*extra: str, context: int = 4096) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [str(BINARY), "-m", str(TEXT), *extra, "--host", "127.0.0.1", "--port", str(port), "-t", "2",
               "-c", str(context), "-np", "1", "--no-webui", "--alias", "tiny-smolvlm-gguf"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    import httpx2

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"llama-server exited: {process.stderr.read()[-2000:]}")
        try:
            if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process, f"http://127.0.0.1:{port}/v1"
        except httpx2.HTTPError:
            pass
        time.sleep(0.3)
    process.kill()
    raise AssertionError("llama-server did not become healthy within 120 s")


@pytest.fixture(scope="module")
def vision_server() -> Iterator[str]:
    process, url = start("--mmproj", str(MMPROJ))
    yield url
    process.terminate()
    process.wait(10)


def test_ask_with_an_image_through_llama_server(vision_server: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image = tmp_path / "red.png"
    Image.new("RGB", (640, 480), (200, 30, 30)).save(image)
    code = main(["ask", "--base-url", vision_server, "--model", "tiny-smolvlm-gguf", "--max-tokens", "8",
                 "--image", str(image), "What colour is this?"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "remote: 127.0.0.1:" in err and "tokens" in err
    bot = Assistant.from_profile("tiny-smolvlm", base_url=vision_server, model="tiny-smolvlm-gguf")
    reply = bot.chat().ask("Describe it.", images=[image], max_new_tokens=6)
    assert reply.status == "ok" and reply.prompt_tokens > 50  # the image's tokens were counted by the server
    assert 1 <= reply.completion_tokens <= 6


def test_stopping_a_llama_server_stream_keeps_the_text(vision_server: str) -> None:
    bot = Assistant.from_profile("tiny-smolvlm", base_url=vision_server, model="tiny-smolvlm-gguf")
    chat = bot.chat()
    stream = chat.stream("Write a long story.", max_new_tokens=200, temperature=0.8, seed=1)
    pieces = []
    for piece in stream:
        pieces.append(piece)
        if len(pieces) == 2:
            threading.Thread(target=stream.cancel).start()
    assert stream.reply is not None and stream.reply.status == "stopped" and len(pieces) < 200
    assert chat.ask("Again, briefly.", max_new_tokens=3).status == "ok"  # the server took the next request


def test_a_server_without_the_vision_projector_says_it_takes_no_images(tmp_path: Path) -> None:
    process, url = start()
    try:
        bot = Assistant.from_profile("tiny-smolvlm", base_url=url, model="tiny-smolvlm-gguf")
        with pytest.raises(AssistantError, match="does not accept images"):
            bot.chat().ask("What is it?", images=[Image.new("RGB", (64, 64), "blue")], max_new_tokens=4)
        with pytest.raises(AssistantError, match="too long for the model served"):
            bot.chat().ask("word " * 6000, max_new_tokens=4)
    finally:
        process.terminate()
        process.wait(10)
