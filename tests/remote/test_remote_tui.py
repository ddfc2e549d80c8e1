"""The TUI on the openai backend: the status bar says where prompts go, and a chat streams from the server."""

from __future__ import annotations

from assistant.tui.app import AssistantApp
from assistant.tui.config import TuiConfig
from sse_server import Canned, RecordingServer, text_events
from tests.tui.tuihelpers import SIZE, async_test, type_and_send, wait_ready, wait_reply


@async_test
async def test_the_tui_chats_through_a_remote_server_and_says_so(server: RecordingServer) -> None:
    server.answers.append(Canned(events=text_events("from", " the server", usage=(9, 2))))
    app = AssistantApp("tiny-smolvlm", model="served-model", base_url=server.url, config=TuiConfig(), image_renderer="halfcell")
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        status = str(app.query_one("#status-text").render())
        assert f"remote: 127.0.0.1:{server.port} (this machine)" in status and "served-model" in status
        await type_and_send(pilot, "hello over there")
        await wait_reply(pilot)
        [reply] = app.chat_log.replies
        assert reply.text == "from the server"
    assert server.requests[0]["messages"][-1] == {"role": "user", "content": "hello over there"}
