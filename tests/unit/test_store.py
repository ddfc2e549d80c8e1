"""The SQLite chat store on real files: round trips, images by content, migrations, refusals, search, concurrency."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from PIL import Image

from assistant.conversation import (
    ImagePart,
    Message,
    ReplyMeta,
    TextPart,
    ToolCallPart,
    ToolResultPart,
)
from assistant.errors import AssistantError
from assistant.images import image_from_pil, load_image_file
from assistant.store import SCHEMA_VERSION, ChatSummary, SearchHit, Store, fts_query


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "chats.sqlite3", tmp_path / "images") as opened:
        yield opened


def picture(seed: int, size: tuple[int, int] = (24, 16)) -> Image.Image:
    width, height = size
    return Image.frombytes("RGB", size, bytes((i * 31 + seed * 17) % 256 for i in range(width * height * 3)))


def user(text: str, *parts) -> Message:
    return Message(role="user", parts=[TextPart(text), *parts])


def assistant(text: str) -> Message:
    return Message(role="assistant", parts=[TextPart(text)])


def fts_consistent(path: Path) -> None:
    """FTS5's own integrity check against the content tables, plus SQLite's."""
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
        conn.execute("INSERT INTO conversations_fts(conversations_fts, rank) VALUES ('integrity-check', 1)")
        conn.execute("INSERT INTO corrections_fts(corrections_fts, rank) VALUES ('integrity-check', 1)")
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []


# --- round trip ----------------------------------------------------------------------------------------------------


def test_round_trip_of_every_part_kind(store: Store, tmp_path: Path) -> None:
    chat = store.create_conversation(title="Receipts", profile="smolvlm-256m", tags=["work", "scans"])
    image = store.put_image(image_from_pil(picture(1), "receipt.png"))
    question = store.add_message(chat.id, user("What is the total?", image))
    call = ToolCallPart(name="zoom", arguments={"box": [1, 2, 3, 4], "note": "ünïcode"}, call_id="c1")
    reply = Message(
        role="assistant",
        parts=[TextPart("Let me zoom."), call],
        status="ok",
        meta=ReplyMeta(profile="smolvlm-256m", model="tiny", ttft_s=0.5, tokens_per_s=12.5, prompt_tokens=90,
                       completion_tokens=7, extra={"tiles": 13}),
    )
    store.add_message(chat.id, reply)
    result = Message(role="tool", parts=[ToolResultPart(call_id="c1", name="zoom", text="crop ok", is_error=False)])
    store.add_message(chat.id, result)
    final = store.add_message(chat.id, assistant("The total is 12.50 EUR."))
    store.set_rating(final.id, 1)
    store.set_correction(final.id, "The total is 12.60 EUR.")
    store.set_rating(reply.id, -1)

    loaded = store.get_conversation(chat.id)

    assert (loaded.id, loaded.title, loaded.profile) == (chat.id, "Receipts", "smolvlm-256m")
    assert sorted(loaded.tags) == ["scans", "work"]
    assert [m.role for m in loaded.messages] == ["user", "assistant", "tool", "assistant"]
    assert [m.id for m in loaded.messages] == [question.id, reply.id, result.id, final.id]
    assert loaded.messages[0].parts == [TextPart("What is the total?"), image]
    assert loaded.messages[0].created_at == question.created_at
    assert loaded.messages[1].parts == [TextPart("Let me zoom."), call]
    assert loaded.messages[1].meta == reply.meta
    assert loaded.messages[1].rating == -1
    assert loaded.messages[2].parts == result.parts
    assert loaded.messages[3].rating == 1
    assert loaded.messages[3].correction == "The total is 12.60 EUR."
    assert loaded.messages[3].training_text == "The total is 12.60 EUR."
    assert loaded.messages[0].meta is None
    assert loaded.images == [image]
    fts_consistent(store.path)


def test_data_survives_reopening(tmp_path: Path) -> None:
    with Store(tmp_path / "s.sqlite3", tmp_path / "img") as first:
        chat = first.create_conversation(profile="p")
        first.add_message(chat.id, user("kept across restarts"))
    with Store(tmp_path / "s.sqlite3", tmp_path / "img") as second:
        assert second.get_conversation(chat.id).messages[0].text == "kept across restarts"
        with sqlite3.connect(tmp_path / "s.sqlite3") as conn:
            assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_open_default_uses_the_user_data_dir(assistant_home: Path) -> None:
    with Store.open_default() as store:
        store.create_conversation(title="x")
        assert store.path == assistant_home / "data" / "assistant.sqlite3"
        assert store.images_dir == assistant_home / "data" / "images"
    assert (assistant_home / "data" / "assistant.sqlite3").is_file()


def test_unknown_chat_id(store: Store) -> None:
    message = r"^no chat with id 42; `assistant chats list` shows the saved chats$"
    with pytest.raises(AssistantError, match=message):
        store.get_conversation(42)
    with pytest.raises(AssistantError, match=message):
        store.add_message(42, user("hi"))
    with pytest.raises(AssistantError, match=message):
        store.delete_conversation(42)


def test_streaming_updates_rewrite_parts_status_meta_and_search(store: Store) -> None:
    chat = store.create_conversation()
    reply = store.add_message(chat.id, Message(role="assistant", parts=[TextPart("")], status="streaming"))
    reply.parts = [TextPart("A walrus is")]
    store.update_message(reply)
    reply.parts = [TextPart("A giraffe is on the left.")]
    reply.status = "stopped"
    reply.meta = ReplyMeta(model="tiny", error=None, completion_tokens=6)
    store.update_message(reply)

    saved = store.get_conversation(chat.id).messages[0]
    assert saved.text == "A giraffe is on the left."
    assert saved.status == "stopped"
    assert saved.meta == reply.meta
    assert store.search("walrus") == []
    assert [hit.message_id for hit in store.search("giraffe")] == [reply.id]
    fts_consistent(store.path)


def test_update_of_a_deleted_message_is_refused(store: Store) -> None:
    chat = store.create_conversation()
    reply = store.add_message(chat.id, assistant("x"))
    store.delete_messages_from(chat.id, reply.id)
    with pytest.raises(AssistantError, match=f"no message with id {reply.id}"):
        store.update_message(reply)


# --- titles, listing, tags ---------------------------------------------------------------------------------------


def test_auto_title_from_first_user_text(store: Store) -> None:
    chat = store.create_conversation()
    store.add_message(chat.id, Message(role="system", parts=[TextPart("You are helpful.")]))
    store.add_message(chat.id, Message(role="user", parts=[image_part(store)]))  # no text yet: still untitled
    assert store.get_conversation(chat.id).title == ""
    long_text = "Please   describe\nthis dashboard screenshot and tell me which of the services are failing right now"
    store.add_message(chat.id, user(long_text))
    title = store.get_conversation(chat.id).title
    assert title.startswith("Please describe this dashboard screenshot")
    assert title.endswith("…")
    assert len(title) <= 61
    assert "\n" not in title
    store.add_message(chat.id, user("second question"))
    assert store.get_conversation(chat.id).title == title


def test_given_title_is_not_replaced(store: Store) -> None:
    chat = store.create_conversation(title="My title")
    store.add_message(chat.id, user("short question"))
    assert store.get_conversation(chat.id).title == "My title"
    store.rename_conversation(chat.id, "  Renamed   chat ")
    assert store.get_conversation(chat.id).title == "Renamed chat"


def image_part(store: Store, seed: int = 3) -> ImagePart:
    return store.put_image(image_from_pil(picture(seed), f"pic{seed}.png"))


def test_list_is_newest_first_with_counts_limit_and_tag(store: Store) -> None:
    first = store.create_conversation(title="first", tags=["Work"])
    second = store.create_conversation(title="second")
    third = store.create_conversation(title="third", tags=["work", "home"])
    assert [c.id for c in store.list_conversations()] == [third.id, second.id, first.id]

    store.add_message(first.id, user("bump"))
    store.add_message(first.id, assistant("ok"))
    listed = store.list_conversations()
    assert [c.id for c in listed] == [first.id, third.id, second.id]
    assert isinstance(listed[0], ChatSummary)
    assert listed[0].message_count == 2 and listed[1].message_count == 0
    assert listed[1].tags == ["home", "work"]
    assert listed[0].updated_at > listed[1].updated_at

    assert [c.id for c in store.list_conversations(limit=2)] == [first.id, third.id]
    assert [c.id for c in store.list_conversations(tag="WORK")] == [first.id, third.id]
    assert store.list_conversations(tag="nothing") == []

    store.add_tags(second.id, ["work", " work ", ""])
    assert store.get_conversation(second.id).tags == ["work"]
    assert store.list_conversations()[0].id == second.id
    store.remove_tags(second.id, ["WORK"])
    assert store.get_conversation(second.id).tags == []


def test_delete_messages_from(store: Store) -> None:
    chat = store.create_conversation()
    other = store.create_conversation()
    messages = [store.add_message(chat.id, user(f"q{i}") if i % 2 == 0 else assistant(f"a{i}")) for i in range(5)]
    kept_elsewhere = store.add_message(other.id, user("elsewhere"))

    store.delete_messages_from(chat.id, messages[2].id)

    assert [m.id for m in store.get_conversation(chat.id).messages] == [messages[0].id, messages[1].id]
    assert [m.id for m in store.get_conversation(other.id).messages] == [kept_elsewhere.id]
    assert store.search("q4") == []
    new = store.add_message(chat.id, user("edited q2"))
    assert new.id > messages[-1].id  # ids are never reused
    with pytest.raises(AssistantError, match=f"message {kept_elsewhere.id} is not in chat {chat.id}"):
        store.delete_messages_from(chat.id, kept_elsewhere.id)
    fts_consistent(store.path)


def test_ratings_and_corrections_only_on_assistant_replies(store: Store) -> None:
    chat = store.create_conversation()
    question = store.add_message(chat.id, user("q"))
    reply = store.add_message(chat.id, assistant("a"))
    with pytest.raises(AssistantError, match="is a user message; only assistant replies can be rated"):
        store.set_rating(question.id, 1)
    with pytest.raises(AssistantError, match="only assistant replies can be corrected"):
        store.set_correction(question.id, "no")
    with pytest.raises(AssistantError, match="-1, 0 or \\+1"):
        store.set_rating(reply.id, 5)
    store.set_rating(reply.id, -1)
    store.set_correction(reply.id, "better")
    store.set_correction(reply.id, None)
    store.set_rating(reply.id, 0)
    saved = store.get_conversation(chat.id).messages[1]
    assert (saved.rating, saved.correction) == (0, None)


# --- images --------------------------------------------------------------------------------------------------------


def test_same_image_twice_is_one_file(store: Store, tmp_path: Path) -> None:
    a = store.put_image(image_from_pil(picture(5), "a.png"))
    b = store.put_image(image_from_pil(picture(5), "b.png"))
    assert a.sha256 == b.sha256
    assert (a.source, b.source) == ("a.png", "b.png")
    files = [p for p in (tmp_path / "images").rglob("*") if p.is_file()]
    assert files == [store.image_path(a.sha256)]
    assert files[0].parent.name == a.sha256[:2]
    assert files[0].name == f"{a.sha256}.png"


def test_original_file_can_vanish_after_put_image(store: Store, tmp_path: Path) -> None:
    original = tmp_path / "photo.jpg"
    picture(9, (40, 30)).save(original, format="JPEG")
    expected = load_image_file(original).image.tobytes()
    part = store.put_image(load_image_file(original))
    original.unlink()

    assert store.image_path(part.sha256).suffix == ".jpg"
    reopened = store.open_image(part)
    assert reopened.mode == "RGB"
    assert reopened.tobytes() == expected
    assert part.source == "photo.jpg"


def test_missing_stored_file_is_a_clear_error(store: Store) -> None:
    part = image_part(store)
    store.image_path(part.sha256).unlink()
    with pytest.raises(AssistantError, match=r"^image pic3\.png is missing from the chat store"):
        store.open_image(part)
    # Putting the same content again heals the store.
    store.put_image(image_from_pil(picture(3), "pic3.png"))
    assert store.open_image(part).size == (24, 16)


def test_image_hash_must_look_like_a_hash(store: Store) -> None:
    with pytest.raises(AssistantError, match="not an image hash"):
        store.image_path("../../etc/passwd")


def test_delete_conversation_removes_only_unreferenced_images(store: Store) -> None:
    shared = image_part(store, seed=1)
    own = image_part(store, seed=2)
    keep = store.create_conversation()
    drop = store.create_conversation()
    store.add_message(keep.id, user("keep", shared))
    store.add_message(drop.id, user("drop", shared, own))
    store.add_message(drop.id, user("own again", own))

    store.delete_conversation(drop.id)

    assert store.image_path(shared.sha256).is_file()
    assert not store.image_path(own.sha256).exists()
    assert not store.image_path(own.sha256).parent.exists()  # the empty fan-out folder goes too
    assert store.open_image(shared).size == (24, 16)
    with pytest.raises(AssistantError, match=f"no chat with id {drop.id}"):
        store.get_conversation(drop.id)
    assert store.search("drop") == []
    fts_consistent(store.path)


def test_update_message_keeps_image_references_in_step(store: Store) -> None:
    first = image_part(store, seed=1)
    second = image_part(store, seed=2)
    chat = store.create_conversation()
    message = store.add_message(chat.id, user("look", first))
    message.parts = [TextPart("look"), second]
    store.update_message(message)
    other = store.create_conversation()
    store.add_message(other.id, user("other"))

    store.delete_conversation(chat.id)

    assert not store.image_path(second.sha256).exists()
    assert store.prune_images() == 1  # `first` lost its last reference when the message was rewritten
    assert not store.image_path(first.sha256).exists()


# --- search --------------------------------------------------------------------------------------------------------


def test_search_messages_titles_and_prefixes(store: Store) -> None:
    cats = store.create_conversation(title="Kitten photos")
    store.add_message(cats.id, user("Which breed is this cat?"))
    answer = store.add_message(cats.id, assistant("It looks like a Maine Coon."))
    tools = store.create_conversation(title="Tools")
    store.add_message(tools.id, Message(role="tool", parts=[ToolResultPart("c", "ocr", text="Invoice number 4711")]))
    café = store.create_conversation(title="Trip")
    store.add_message(café.id, user("the café was nice"))

    hits = store.search("maine coon")
    assert hits == [SearchHit(cats.id, answer.id, "Kitten photos", "It looks like a «Maine» «Coon».")]
    assert [h.conversation_id for h in store.search("kitt")] == [cats.id]  # title, by prefix
    assert store.search("kitten")[0].message_id == 0
    assert [h.conversation_id for h in store.search("invoice 4711")] == [tools.id]  # tool results are searchable
    assert [h.conversation_id for h in store.search("cafe")] == [café.id]  # diacritics folded
    assert store.search("maine walrus") == []  # every word must match
    assert len(store.search("a", limit=1)) == 1


@pytest.mark.parametrize(
    "nasty",
    ['"foo', "AND OR (", 'foo"bar', "NEAR(a b", "title:foo", "*", "^start", "a AND", "))", "-x", "", "   ", "'", "\\"],
)
def test_search_never_raises_on_user_input(store: Store, nasty: str) -> None:
    chat = store.create_conversation(title="foo and bar")
    store.add_message(chat.id, user("foo bar baz start"))
    hits = store.search(nasty)
    assert isinstance(hits, list)


def test_search_finds_corrections_and_follows_their_changes(store: Store, tmp_path: Path) -> None:
    chat = store.create_conversation(title="Plants")
    store.add_message(chat.id, user("What tree is this?"))
    reply = store.add_message(chat.id, Message(role="assistant", parts=[TextPart("An oak.")]))
    assert store.search("sycamore") == []
    store.set_correction(reply.id, "A sycamore maple.")
    [hit] = store.search("sycamore")
    assert (hit.conversation_id, hit.message_id) == (chat.id, reply.id) and hit.snippet.startswith("correction: ")
    assert [h.message_id for h in store.search("oak")] == [reply.id]  # the reply's own text is still found
    store.set_correction(reply.id, "A beech.")
    assert store.search("sycamore") == [] and [h.message_id for h in store.search("beech")] == [reply.id]
    store.set_correction(reply.id, None)
    assert store.search("beech") == []
    store.set_correction(reply.id, "A birch.")
    store.delete_conversation(chat.id)
    assert store.search("birch") == []
    fts_consistent(store.path)


def test_search_quotes_are_plain_text(store: Store) -> None:
    chat = store.create_conversation()
    message = store.add_message(chat.id, user('he said "foo" and OR left'))
    assert [h.message_id for h in store.search('"foo')] == [message.id]
    assert [h.message_id for h in store.search("and OR")] == [message.id]


def test_fts_query_escapes_everything() -> None:
    assert fts_query('say "hi" (now)') == '"say"* """hi"""* "(now)"*'
    assert fts_query("AND OR ( * ^") == '"AND"* "OR"*'
    assert fts_query("   ") == ""


# --- migrations and refusals ---------------------------------------------------------------------------------------

V1_SCHEMA = """
CREATE TABLE conversations (
    id INTEGER PRIMARY KEY AUTOINCREMENT, title TEXT NOT NULL DEFAULT '', profile TEXT NOT NULL DEFAULT '',
    created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE INDEX conversations_updated ON conversations(updated_at);
CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
    parts TEXT NOT NULL DEFAULT '[]', text TEXT NOT NULL DEFAULT '', status TEXT NOT NULL DEFAULT 'ok',
    rating INTEGER NOT NULL DEFAULT 0 CHECK (rating IN (-1, 0, 1)), correction TEXT, meta TEXT,
    created_at REAL NOT NULL);
CREATE INDEX messages_conversation ON messages(conversation_id, id);
CREATE TABLE images (sha256 TEXT PRIMARY KEY, ext TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    size INTEGER NOT NULL, created_at REAL NOT NULL);
CREATE TABLE message_images (message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    sha256 TEXT NOT NULL, PRIMARY KEY (message_id, sha256)) WITHOUT ROWID;
CREATE INDEX message_images_sha256 ON message_images(sha256);
CREATE VIRTUAL TABLE messages_fts USING fts5(
    text, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text); END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text); END;
PRAGMA user_version = 1;
"""


def test_migrates_a_version_1_store(tmp_path: Path) -> None:
    """A store written by release 1 (no tags, no title search) opens, keeps its data and gains the new features."""
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SCHEMA)
        conn.execute("INSERT INTO conversations VALUES (7, 'Old holiday chat', 'smolvlm-256m', 100.0, 200.0)")
        parts = json.dumps([{"kind": "text", "text": "Where was this beach photo taken?"}])
        conn.execute(
            "INSERT INTO messages (id, conversation_id, role, parts, text, created_at) "
            "VALUES (3, 7, 'user', ?, ?, 150)",
            (parts, "Where was this beach photo taken?"),
        )
        meta = json.dumps({"profile": "smolvlm-256m", "model": "m", "ttft_s": 1.5, "some_future_key": 1})
        conn.execute(
            "INSERT INTO messages (id, conversation_id, role, parts, text, rating, correction, meta, created_at) "
            "VALUES (4, 7, 'assistant', ?, 'In Portugal.', 1, 'In the Algarve.', ?, 160)",
            (json.dumps([{"kind": "text", "text": "In Portugal."}]), meta),
        )
    conn.close()

    with Store(path, tmp_path / "images") as store:
        chat = store.get_conversation(7)
        assert chat.title == "Old holiday chat"
        assert [m.text for m in chat.messages] == ["Where was this beach photo taken?", "In Portugal."]
        assert chat.messages[1].rating == 1 and chat.messages[1].correction == "In the Algarve."
        assert chat.messages[1].meta.ttft_s == 1.5
        assert chat.messages[1].meta.extra == {"some_future_key": 1}
        assert chat.tags == []
        # Features of migrations 2 and 3 work on the old data.
        store.add_tags(7, ["travel"])
        assert [c.id for c in store.list_conversations(tag="travel")] == [7]
        assert [(h.conversation_id, h.message_id) for h in store.search("holiday")] == [(7, 0)]
        assert [h.message_id for h in store.search("beach")] == [3]
        [corrected] = store.search("algarve")  # migration 4 indexed the correction written by release 1
        assert corrected.message_id == 4 and corrected.snippet == "correction: In the «Algarve»."
        new = store.add_message(7, user("and this one?"))
        assert new.id == 5
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    fts_consistent(path)


def test_refuses_a_store_from_a_newer_version(tmp_path: Path) -> None:
    path = tmp_path / "future.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE something_new (x)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    expected = (
        rf"^the chat store .*future\.sqlite3 was written by a newer version \(schema {SCHEMA_VERSION + 5}, "
        rf"this version reads up to {SCHEMA_VERSION}\); upgrade vlm-assistant$"
    )
    with pytest.raises(AssistantError, match=expected):
        Store(path, tmp_path / "images")
    with sqlite3.connect(path) as conn:  # left untouched
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 5
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()


def test_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "chats.sqlite3"
    path.write_bytes(b"this is a text file, not SQLite at all\n" * 200)
    with pytest.raises(AssistantError, match=r"^the chat store .*chats\.sqlite3 is not a readable SQLite database"):
        Store(path, tmp_path / "images")
    assert path.read_bytes().startswith(b"this is a text file")


def test_refuses_a_foreign_sqlite_database(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE conversations (x)")
    conn.close()
    with pytest.raises(AssistantError, match=r"could not be upgraded to schema 1 .*move the file aside"):
        Store(path, tmp_path / "images")


def test_locked_store_on_write(tmp_path: Path) -> None:
    path = tmp_path / "chats.sqlite3"
    with Store(path, tmp_path / "images", busy_timeout_s=0.1) as store:
        chat = store.create_conversation(title="before the lock")
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            locked = r"^the chat store .* is locked by another program \(waited 0.1 s\)"
            with pytest.raises(AssistantError, match=locked):
                store.add_message(chat.id, user("blocked"))
            assert store.get_conversation(chat.id).title == "before the lock"  # WAL: reads still work
            other.execute("ROLLBACK")
        finally:
            other.close()
        store.add_message(chat.id, user("after the lock"))  # usable again once the lock is gone
        assert [m.text for m in store.get_conversation(chat.id).messages] == ["after the lock"]


def test_locked_store_on_open(tmp_path: Path) -> None:
    path = tmp_path / "chats.sqlite3"
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("CREATE TABLE placeholder (x)")
        other.execute("BEGIN EXCLUSIVE")  # rollback-journal mode: an exclusive lock blocks readers too
        with pytest.raises(AssistantError, match=r"^the chat store .* is locked by another program"):
            Store(path, tmp_path / "images", busy_timeout_s=0.1)
    finally:
        other.close()


def test_closed_store_says_so(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3", tmp_path / "img")
    store.close()
    store.close()
    with pytest.raises(AssistantError, match="closed"):
        store.list_conversations()


# --- concurrency ---------------------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from assistant.conversation import Message, TextPart
    from assistant.store import Store

    path, images, chat_id, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    with Store(path, images, busy_timeout_s=30) as store:
        print("ready", flush=True)
        sys.stdin.readline()
        for i in range(count):
            message = store.add_message(chat_id, Message(role="user", parts=[TextPart(f"child {i}")]))
            message.parts = [TextPart(f"child {i} done")]
            store.update_message(message)
    print("done", flush=True)
    """
)


def test_a_second_process_writes_at_the_same_time(tmp_path: Path) -> None:
    path, images, count = tmp_path / "shared.sqlite3", tmp_path / "images", 150
    with Store(path, images, busy_timeout_s=30) as store:
        mine = store.create_conversation(title="parent")
        theirs = store.create_conversation(title="child")
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(images), str(theirs.id), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert child.stdout.readline().strip() == "ready"
            child.stdin.write("go\n")
            child.stdin.flush()
            for i in range(count):
                store.add_message(mine.id, user(f"parent {i}"))
                store.add_message(theirs.id, assistant(f"parent into child {i}"))
            assert child.stdout.readline().strip() == "done"
            assert child.wait(timeout=120) == 0
        finally:
            if child.poll() is None:
                child.kill()

        mine_texts = [m.text for m in store.get_conversation(mine.id).messages]
        theirs_texts = [m.text for m in store.get_conversation(theirs.id).messages]
        assert mine_texts == [f"parent {i}" for i in range(count)]
        assert sorted(t for t in theirs_texts if t.startswith("child")) == sorted(
            f"child {i} done" for i in range(count)
        )
        assert len(theirs_texts) == 2 * count
        assert len(store.search("child done", limit=1000)) == count
    fts_consistent(path)


def test_threads_share_one_store(store: Store) -> None:
    chat = store.create_conversation()
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(25):
                message = store.add_message(chat.id, user(f"w{worker} m{i}"))
                store.update_message(message)
                store.list_conversations()
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    texts = sorted(m.text for m in store.get_conversation(chat.id).messages)
    assert texts == sorted(f"w{w} m{i}" for w in range(4) for i in range(25))
    fts_consistent(store.path)


# --- export --------------------------------------------------------------------------------------------------------


def _chat_for_export(store: Store) -> tuple[int, ImagePart]:
    chat = store.create_conversation(title="Export me", tags=["demo"])
    image = image_part(store, seed=4)
    store.add_message(chat.id, user("What is this?", image))
    store.add_message(chat.id, Message(role="assistant", parts=[ToolCallPart("zoom", {"x": 1}, "c9")]))
    store.add_message(chat.id, Message(role="tool", parts=[ToolResultPart("c9", "zoom", "boom", is_error=True)]))
    reply = store.add_message(
        chat.id, Message(role="assistant", parts=[TextPart("A cat.")], status="failed", meta=ReplyMeta(error="OOM"))
    )
    store.set_rating(reply.id, -1)
    store.set_correction(reply.id, "A dog.")
    return chat.id, image


def test_export_markdown(store: Store) -> None:
    chat_id, image = _chat_for_export(store)
    text = store.export_markdown(chat_id)
    assert text.startswith("# Export me\n")
    assert "Tags: demo" in text
    assert "## User\n\nWhat is this?" in text
    assert f"![pic4.png]({store.image_path(image.sha256).as_uri()})" in text
    assert "**Tool call** `zoom`" in text and '"x": 1' in text
    assert "**Tool error** `zoom`" in text and "boom" in text
    assert "_(failed: OOM)_" in text
    assert "_Rated -1 (bad)_" in text
    assert "**Correction:**\n\n> A dog." in text
    assert text.index("## User") < text.index("## Assistant") < text.index("## Tool")


def test_export_jsonl(store: Store) -> None:
    chat_id, image = _chat_for_export(store)
    text = store.export_jsonl(chat_id)
    assert text.endswith("\n") and text.count("\n") == 1
    record = json.loads(text)
    assert {"id", "title", "tags", "messages"} <= record.keys()
    assert (record["id"], record["title"], record["tags"]) == (chat_id, "Export me", ["demo"])
    assert [m["role"] for m in record["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert record["messages"][0]["parts"][1] == {
        "kind": "image", "sha256": image.sha256, "width": 24, "height": 16, "source": "pic4.png"
    }
    last = record["messages"][-1]
    assert (last["status"], last["rating"], last["correction"]) == ("failed", -1, "A dog.")
    assert last["meta"]["error"] == "OOM"
    assert record["messages"][0]["meta"] is None
    assert set(record["messages"][0]) >= {"role", "parts", "status", "rating", "correction", "meta"}
