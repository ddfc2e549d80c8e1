"""The agent's TUI pieces in a small host app: the confirmation dialog, steps drawn as they happen, Esc (stop)."""

from __future__ import annotations

import asyncio
import time

from agenthelpers import echo_tool, image_tool, scripted_assistant
from textual import events
from textual.app import App, ComposeResult
from textual.widgets import Input, Static

from assistant.agent import stored_steps
from assistant.hooktypes import Tool, ToolResult
from assistant.paths import user_paths
from assistant.permissions import Answer, ApprovalRequest, read_allow_list
from assistant.tui.agentrun import AgentEventPosted, AgentView, start_agent_run
from assistant.tui.screens.approval import ToolApprovalDialog
from assistant.tui.widgets.chatlog import AssistantMessage, ChatLog
from assistant.tui.widgets.toolstep import ToolStep

CALL = '<tool_call>{{"name": "{name}", "arguments": {arguments}}}</tool_call>'


def painter(side_effects: bool = True) -> Tool:
    tool = image_tool("paint", colour="blue")
    return Tool(tool.name, tool.description, tool.parameters, tool.run, side_effects=side_effects)


class Host(App[None]):
    """The minimum the app provides: a chat log, the first reply widget, and events routed to an AgentView."""

    def __init__(self, bot, chat) -> None:
        super().__init__()
        self.bot = bot
        self.chat = chat
        self.run_: object = None
        self.view: AgentView | None = None

    def compose(self) -> ComposeResult:
        yield ChatLog()

    async def ask(self, question: str) -> None:
        log = self.query_one(ChatLog)
        first = await log.add(AssistantMessage(None, renderer="halfcell"))
        self.view = AgentView(log, first, self.bot.store, lambda: AssistantMessage(None, renderer="halfcell"), "halfcell")
        self.run_ = start_agent_run(self, self.chat, question)

    async def on_agent_event_posted(self, message: AgentEventPosted) -> None:
        if message.run is self.run_ and self.view is not None:
            await self.view.handle(message.event)


def run_async(coroutine_function):
    def wrapper(*args, **kwargs):
        asyncio.run(coroutine_function(*args, **kwargs))

    wrapper.__name__ = coroutine_function.__name__
    return wrapper


async def wait_for(pilot, condition, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.02)


@run_async
async def test_dialog_answers_only_through_keys_and_shows_arguments_as_plain_text():
    request = ApprovalRequest(
        "screenshot", "Capture.", {"note": "[b]approve[/b] Answer.ALWAYS"}, "it captures your screen", always="screenshot"
    )
    answers = []

    class DialogHost(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ToolApprovalDialog(request), answers.append)

    for key, expected in (("ctrl+a", Answer.ALWAYS), ("y", Answer.ONCE), ("escape", Answer.DENY), ("n", Answer.DENY)):
        app = DialogHost()
        async with app.run_test() as pilot:
            await pilot.pause()
            dialog = app.screen
            assert isinstance(dialog, ToolApprovalDialog) and app.focused.id == "deny"
            shown = str(dialog.query_one("#arguments", Static).render())
            assert "[b]approve[/b] Answer.ALWAYS" in shown  # markup is not interpreted
            await wait_for(pilot, lambda: dialog.armed, "the dialog to arm")
            await pilot.press("a")  # a letter of running text is not "always"
            await pilot.pause()
            assert app.screen is dialog
            await pilot.press(key)
            await pilot.pause()
        assert answers[-1] is expected


@run_async
async def test_the_dialog_takes_no_key_and_no_click_while_it_arms():
    request = ApprovalRequest("screenshot", "Capture.", {}, "it captures your screen", always="screenshot")
    answers = []

    class DialogHost(App[None]):
        def on_mount(self) -> None:
            self.push_screen(ToolApprovalDialog(request, arm_delay_s=3600), answers.append)

    app = DialogHost()
    async with app.run_test() as pilot:
        await pilot.pause()
        dialog = app.screen
        assert isinstance(dialog, ToolApprovalDialog) and not dialog.armed
        assert dialog.has_class("arming")
        assert "in a moment" in str(dialog.query_one("#arming", Static).render())  # it shows that it is arming
        await pilot.press("y", "a", "ctrl+a", "n", "escape", "enter", "space", "tab", "enter")
        await pilot.click("#always")
        await pilot.click("#once")
        await pilot.pause()
        assert app.screen is dialog and answers == []
        assert dialog.dropped_keys == 9


class PromptHost(Host):
    """The host with a prompt that has the focus, as in the app: the user types while the agent asks."""

    def compose(self) -> ComposeResult:
        yield ChatLog()
        yield Input(id="prompt")


@run_async
async def test_keys_typed_as_the_dialog_opens_grant_nothing_and_ctrl_a_works_once_armed():
    ran = []
    tool = Tool("paint", "Paint.", {"type": "object", "properties": {}}, lambda: ran.append(1) or ToolResult("x"), side_effects=True)
    bot, _ = scripted_assistant([CALL.format(name="paint", arguments="{}"), "ok"], [tool])
    app = PromptHost(bot, bot.chat())
    async with app.run_test() as pilot:
        app.query_one("#prompt", Input).focus()
        await pilot.pause()
        # typed ahead: made before the dialog exists, delivered after it armed (a busy app reads them late)
        typed_ahead = [events.Key(key, char) for key, char in
                       (("a", "a"), ("space", " "), ("y", "y"), ("ctrl+a", None), ("enter", "\r"), ("n", "n"))]
        await app.ask("Paint.")
        await pilot.press(*"a cat")  # the user goes on typing "a cat" while the agent asks
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalDialog), "the confirmation dialog")
        dialog = app.screen
        await pilot.press("y", "ctrl+a")  # during the arming delay (or, on a slow machine, just before it)
        await wait_for(pilot, lambda: dialog.armed, "the dialog to arm")
        for event in typed_ahead:
            app.post_message(event)
        await pilot.pause(0.2)
        assert app.screen is dialog and ran == [] and app.view.finished is None
        assert read_allow_list(user_paths().config_file) == []
        await pilot.press("ctrl+a")  # the deliberate key, after the dialog armed
        await wait_for(pilot, lambda: app.view.finished is not None, "the end of the run")
    assert ran == [1]
    assert read_allow_list(user_paths().config_file) == ["paint"]


@run_async
async def test_a_run_asks_then_draws_each_step_and_the_answer():
    bot, _ = scripted_assistant([CALL.format(name="paint", arguments="{}"), "A blue picture."], [painter()])
    chat = bot.chat()
    app = Host(bot, chat)
    async with app.run_test(size=(100, 40)) as pilot:
        await app.ask("Paint something.")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalDialog), "the confirmation dialog")
        chat_screen = app.screen_stack[0]
        await wait_for(pilot, lambda: chat_screen.query(ToolStep), "the step")
        step = chat_screen.query_one(ToolStep)
        assert step.status == "needs confirmation" and not step.collapsed
        await wait_for(pilot, lambda: app.screen.armed, "the dialog to arm")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.view.finished is not None, "the end of the run")
        await pilot.pause()
        assert app.view.finished.reason == "answer"
        assert step.status == "done · 1 image" and step.collapsed and step.result.text == "a blue picture"
        replies = list(app.query(AssistantMessage))
        assert len(replies) == 2 and replies[-1].text.strip() == "A blue picture."
        assert replies[0].message.tool_calls[0].name == "paint"  # the first reply shows as its call
        log_children = list(app.query_one(ChatLog).children)
        assert log_children.index(step) == 1  # call, then result, then answer: in order


@run_async
async def test_always_allow_from_the_dialog_is_remembered():
    bot, _ = scripted_assistant([CALL.format(name="paint", arguments="{}"), "ok"], [painter()])
    app = Host(bot, bot.chat())
    async with app.run_test() as pilot:
        await app.ask("Paint.")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalDialog), "the confirmation dialog")
        await wait_for(pilot, lambda: app.screen.armed, "the dialog to arm")
        await pilot.press("ctrl+a")
        await wait_for(pilot, lambda: app.view.finished is not None, "the end of the run")
    assert read_allow_list(user_paths().config_file) == ["paint"]


@run_async
async def test_stop_while_the_dialog_is_open_withdraws_it_and_nothing_runs():
    ran = []
    tool = Tool("paint", "Paint.", {"type": "object", "properties": {}}, lambda: ran.append(1) or ToolResult("x"), side_effects=True)
    bot, _ = scripted_assistant([CALL.format(name="paint", arguments="{}")], [tool])
    chat = bot.chat()
    app = Host(bot, chat)
    async with app.run_test() as pilot:
        await app.ask("Paint.")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalDialog), "the confirmation dialog")
        app.run_.stop()  # what Esc does in the app
        await wait_for(pilot, lambda: app.view.finished is not None, "the end of the run")
        await pilot.pause()
        assert not isinstance(app.screen, ToolApprovalDialog)
        assert app.view.finished.reason == "stopped" and ran == []
        notices = [str(w.render()) for w in app.query(".notice")]
        assert notices == ["stopped by the user"]
    assert [m.role for m in bot.store.get_conversation(chat.id).messages] == ["user", "assistant", "tool"]


def test_a_reopened_chat_pairs_each_call_with_its_result():
    script = [CALL.format(name="echo", arguments='{"text": "a"}') + CALL.format(name="paint", arguments="{}"), "done"]
    bot, _ = scripted_assistant(script, [echo_tool(), painter(side_effects=False)])
    chat = bot.chat()
    from assistant.agent import Agent
    from assistant.permissions import Permissions

    list(Agent(chat, Permissions()).run("go"))
    messages = bot.store.get_conversation(chat.id).messages
    steps = stored_steps(messages)
    assert [(s.call.name, s.result.text, len(s.images), s.message_index) for s in steps] == [
        ("echo", "echo: a", 0, 1),
        ("paint", "a blue picture", 1, 1),
    ]
    assert [s.result_index for s in steps] == [2, 3]


@run_async
async def test_the_dialog_offers_always_only_where_the_policy_does():
    from textual.widgets import Button

    click = ApprovalRequest("click", "Click.", {"x": 1, "y": 2}, "it has side effects", always='click in "Calculator"')
    typing = ApprovalRequest("type_text", "Type.", {"text": "hi"}, "it has side effects")
    answers = []

    class DialogHost(App[None]):
        def __init__(self, request) -> None:
            super().__init__()
            self.request = request

        def on_mount(self) -> None:
            self.push_screen(ToolApprovalDialog(self.request, arm_delay_s=0.01), answers.append)

    app = DialogHost(click)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalDialog) and app.screen.armed, "the dialog")
        assert str(app.screen.query_one("#always", Button).label) == 'Always allow click in "Calculator" (Ctrl+A)'
        await pilot.press("ctrl+a")
        await pilot.pause()
    assert answers == [Answer.ALWAYS]
    app = DialogHost(typing)
    async with app.run_test() as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalDialog) and app.screen.armed, "the dialog")
        dialog = app.screen
        assert not dialog.query("#always")
        assert "Ctrl+A" not in str(dialog.query_one("#arming", Static).render())
        await pilot.press("ctrl+a")  # not offered: nothing happens
        await pilot.pause()
        assert app.screen is dialog and answers == [Answer.ALWAYS]
        await pilot.press("y")
        await pilot.pause()
    assert answers == [Answer.ALWAYS, Answer.ONCE]
