"""Agent mode in the TUI on the tiny model: a question runs the agent, Esc stops it, saved tool steps reopen."""

from __future__ import annotations

from assistant.conversation import Message, TextPart, ToolCallPart, ToolResultPart
from assistant.tui.widgets.toolstep import ToolStep
from tests.tui.tuihelpers import SIZE, async_test, type_and_send, wait_for, wait_ready


@async_test
async def test_in_agent_mode_a_question_runs_the_agent(make_app, store):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await pilot.press("ctrl+t")
        assert app.agent_mode
        assert "agent (tools on)" in str(app.query_one("#status-text").render())
        await type_and_send(pilot, "what is on my screen?")
        await wait_for(pilot, lambda: app.chat is not None and app.agent_run is None, "the agent to finish")
        messages = store.get_conversation(app.chat.id).messages
        assert [m.role for m in messages][:2] == ["user", "assistant"]
        assert messages[1].meta.extra.get("agent") is True  # answered by the agent, with the tools offered
        assert app.chat_log.replies[0].message is not None
        await type_and_send(pilot, "/agent off")
        assert not app.agent_mode


@async_test
async def test_escape_stops_the_agent(make_app, store, gated_generation):
    app = make_app(max_new_tokens=200)
    async with app.run_test(size=SIZE) as pilot:
        await wait_ready(pilot)
        await type_and_send(pilot, "/agent on")
        await type_and_send(pilot, "go on for a while")
        await wait_for(pilot, lambda: app.chat_log.replies and app.chat_log.replies[0].text, "the first piece")
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.agent_run is None, "the agent to stop")
        await pilot.pause()
        notices = [str(widget.render()) for widget in app.chat_log.query(".notice")]
        assert notices == ["stopped by the user"]
        assert store.get_conversation(app.chat.id).messages[1].status == "stopped"


@async_test
async def test_a_reopened_chat_shows_each_tool_call_with_its_result(make_app, store):
    conversation = store.create_conversation(title="Tools", profile="tiny-smolvlm")
    store.add_message(conversation.id, Message(role="user", parts=[TextPart("say hi with the echo tool")]))
    call = ToolCallPart(name="echo", arguments={"text": "hi"}, call_id="c1")
    store.add_message(conversation.id, Message(role="assistant", parts=[call]))
    store.add_message(conversation.id, Message(role="tool", parts=[ToolResultPart(call_id="c1", name="echo", text="echo: hi")]))
    store.add_message(conversation.id, Message(role="assistant", parts=[TextPart("It said hi.")]))
    app = make_app(autoload=False, chat_id=conversation.id)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        [step] = app.chat_log.query(ToolStep)
        assert step.call.name == "echo" and step.result.text == "echo: hi"
        assert step.status == "done" and step.collapsed
        assert not app.chat_log.query(".notice")  # the result shows in its step, not as a loose line
        assert [reply.text for reply in app.chat_log.replies][-1] == "It said hi."
