"""The Sidebar on its own (no AssistantApp): it lists, searches, renames, exports and deletes chats itself and tells
its parent only through messages."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult

from assistant.tui.widgets.sidebar import ChatList, Sidebar, slug
from tests.tui.tuihelpers import async_test, saved_chat, wait_dialog, wait_for


class SidebarHost(App[None]):
    """Just the sidebar, recording the messages it posts."""

    def __init__(self, store: Any, current: int | None = None) -> None:
        super().__init__()
        self.store = store
        self.current = current
        self.posted: list[Any] = []
        self.notes: list[tuple[str, str]] = []

    def compose(self) -> ComposeResult:
        sidebar = Sidebar(id="sidebar")
        sidebar.display = False  # as in the app: Ctrl+B shows it
        sidebar.store = self.store
        sidebar.current_chat_id = self.current
        yield sidebar

    def notify(self, message: str, *, title: str = "", severity: Any = "information", timeout: float | None = None,
               markup: bool = True) -> None:
        self.notes.append((severity, message))

    def on_sidebar_chat_renamed(self, event: Sidebar.ChatRenamed) -> None:
        self.posted.append(("renamed", event.chat_id, event.title))

    def on_sidebar_open_chat_delete_requested(self, event: Sidebar.OpenChatDeleteRequested) -> None:
        self.posted.append(("delete open", event.chat_id))

    def on_sidebar_chat_selected(self, event: Sidebar.ChatSelected) -> None:
        self.posted.append(("selected", event.chat_id))


def titles(app: App[None]) -> list[str]:
    chat_list = app.query_one(ChatList)
    return [str(chat_list.get_option_at_index(i).prompt).split("\n")[0].strip("● ").strip()
            for i in range(chat_list.option_count)]


def test_slug_makes_a_safe_file_name():
    assert slug("Holiday plans: Rome/Paris!") == "holiday-plans-rome-paris"
    assert slug("???") == "chat"


@async_test
async def test_the_sidebar_renames_exports_and_deletes_by_itself(store, tmp_path):
    keep = saved_chat(store, "Keep me", "q1", "a1")
    other = saved_chat(store, "Other chat", "what is 2+2?", "**4**")
    app = SidebarHost(store, current=keep)
    async with app.run_test() as pilot:
        sidebar = app.query_one(Sidebar)
        assert sidebar.toggle() and titles(app) == ["Other chat", "Keep me"]
        sidebar.rename_chat(other, "  Sums   again ")
        await pilot.pause()
        assert store.get_conversation(other).title == "Sums again" and titles(app)[0] == "Sums again"
        assert app.posted == [("renamed", other, "Sums again")]
        path = sidebar._export(other, str(tmp_path))
        assert path == tmp_path / f"sums-again-{other}.md" and path.read_text(encoding="utf-8").startswith("# Sums again")
        sidebar.delete_chat(other)  # not the open chat: the sidebar deletes it once confirmed
        await wait_dialog(pilot, "#yes")
        await pilot.press("ctrl+y")
        await wait_for(pilot, lambda: ("information", "chat deleted") in app.notes, "the deletion")
        assert [c.id for c in store.list_conversations()] == [keep] and titles(app) == ["Keep me"]
        sidebar.delete_chat(keep)  # the open chat: the parent is asked to leave it first, nothing is deleted yet
        await wait_dialog(pilot, "#yes")
        await pilot.press("ctrl+y")
        await wait_for(pilot, lambda: ("delete open", keep) in app.posted, "the request")
        assert [c.id for c in store.list_conversations()] == [keep]


@async_test
async def test_a_failing_export_is_one_line_and_the_list_stays(store, tmp_path):
    chat_id = saved_chat(store, "Notes", "q", "a")
    app = SidebarHost(store)
    async with app.run_test() as pilot:
        sidebar = app.query_one(Sidebar)
        sidebar.toggle()
        sidebar.export_chat(chat_id)
        field = await wait_dialog(pilot, "#dialog-input")
        field.value = str(tmp_path / "missing" / "x.md")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.notes, "the error")
        severity, message = app.notes[0]
        assert severity == "error" and message.startswith(f"cannot write {tmp_path / 'missing' / 'x.md'}")
        assert "\n" not in message and titles(app) == ["Notes"]
