"""The chat store: conversations in SQLite (WAL, versioned migrations, FTS5 search) and images stored by content."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from .conversation import (
    ROLES,
    Conversation,
    ImagePart,
    Message,
    Part,
    ReplyMeta,
    TextPart,
    ToolCallPart,
    ToolResultPart,
    VideoPart,
    part_from_dict,
    part_to_dict,
)
from .errors import AssistantError
from .images import LoadedImage, decode_image_bytes, image_extension
from .paths import make_private_dir, touch_private

log = logging.getLogger(__name__)

# --- schema ----------------------------------------------------------------------------------------------------------
# Each migration is a list of single SQL statements (no executescript: it would commit the migration transaction).
# Never edit a released migration: add a new one. Migration N brings `PRAGMA user_version` from N-1 to N.

_MIGRATION_1 = [
    """CREATE TABLE conversations (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        title TEXT NOT NULL DEFAULT '',
        profile TEXT NOT NULL DEFAULT '',
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )""",
    "CREATE INDEX conversations_updated ON conversations(updated_at)",
    """CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        role TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant', 'tool')),
        parts TEXT NOT NULL DEFAULT '[]',
        text TEXT NOT NULL DEFAULT '',
        status TEXT NOT NULL DEFAULT 'ok',
        rating INTEGER NOT NULL DEFAULT 0 CHECK (rating IN (-1, 0, 1)),
        correction TEXT,
        meta TEXT,
        created_at REAL NOT NULL
    )""",
    "CREATE INDEX messages_conversation ON messages(conversation_id, id)",
    """CREATE TABLE images (
        sha256 TEXT PRIMARY KEY,
        ext TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        size INTEGER NOT NULL,
        created_at REAL NOT NULL
    )""",
    """CREATE TABLE message_images (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        sha256 TEXT NOT NULL,
        PRIMARY KEY (message_id, sha256)
    ) WITHOUT ROWID""",
    "CREATE INDEX message_images_sha256 ON message_images(sha256)",
    """CREATE VIRTUAL TABLE messages_fts USING fts5(
        text, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
    END""",
    """CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    """CREATE TRIGGER messages_fts_update AFTER UPDATE OF text ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO messages_fts(rowid, text) VALUES (new.id, new.text);
    END""",
]

_MIGRATION_2 = [  # tags on chats
    """CREATE TABLE conversation_tags (
        conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        tag TEXT NOT NULL COLLATE NOCASE,
        PRIMARY KEY (conversation_id, tag)
    ) WITHOUT ROWID""",
    "CREATE INDEX conversation_tags_tag ON conversation_tags(tag)",
]

_MIGRATION_3 = [  # chat titles become searchable; existing titles are indexed by the rebuild
    """CREATE VIRTUAL TABLE conversations_fts USING fts5(
        title, content='conversations', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER conversations_fts_insert AFTER INSERT ON conversations BEGIN
        INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title);
    END""",
    """CREATE TRIGGER conversations_fts_delete AFTER DELETE ON conversations BEGIN
        INSERT INTO conversations_fts(conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
    END""",
    """CREATE TRIGGER conversations_fts_update AFTER UPDATE OF title ON conversations BEGIN
        INSERT INTO conversations_fts(conversations_fts, rowid, title) VALUES ('delete', old.id, old.title);
        INSERT INTO conversations_fts(rowid, title) VALUES (new.id, new.title);
    END""",
    "INSERT INTO conversations_fts(conversations_fts) VALUES ('rebuild')",
]

_MIGRATION_4 = [  # corrections become searchable (the reply the user wanted); existing ones indexed by the rebuild
    """CREATE VIRTUAL TABLE corrections_fts USING fts5(
        correction, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2'
    )""",
    """CREATE TRIGGER corrections_fts_insert AFTER INSERT ON messages BEGIN
        INSERT INTO corrections_fts(rowid, correction) VALUES (new.id, new.correction);
    END""",
    """CREATE TRIGGER corrections_fts_delete AFTER DELETE ON messages BEGIN
        INSERT INTO corrections_fts(corrections_fts, rowid, correction) VALUES ('delete', old.id, old.correction);
    END""",
    """CREATE TRIGGER corrections_fts_update AFTER UPDATE OF correction ON messages BEGIN
        INSERT INTO corrections_fts(corrections_fts, rowid, correction) VALUES ('delete', old.id, old.correction);
        INSERT INTO corrections_fts(rowid, correction) VALUES (new.id, new.correction);
    END""",
    "INSERT INTO corrections_fts(corrections_fts) VALUES ('rebuild')",
]

MIGRATIONS: list[list[str]] = [_MIGRATION_1, _MIGRATION_2, _MIGRATION_3, _MIGRATION_4]
SCHEMA_VERSION: int = len(MIGRATIONS)

WRITER_PID_KEY = "writer_pid"
"""In a `streaming` reply's meta.extra: the process generating it (gone at the next start: the reply is
interrupted). Removed when the reply ends."""

TITLE_LENGTH = 60
"""Auto-titles take about this many characters of the first user message."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE_EXTENSIONS = ("png", "jpg", "webp", "gif", "bmp")
_ROLE_HEADINGS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool"}


@dataclass
class ChatSummary:
    """One line of the chat list."""

    id: int
    title: str
    profile: str
    created_at: float
    updated_at: float
    message_count: int
    tags: list[str] = field(default_factory=list)


@dataclass
class SearchHit:
    """A search match; `message_id` is 0 when the chat's title matched rather than a message."""

    conversation_id: int
    message_id: int
    title: str
    snippet: str


# --- helpers ---------------------------------------------------------------------------------------------------------


def _searchable_text(parts: Sequence[Part]) -> str:
    """What the full-text index sees of a message: its text and the text of tool results."""
    chunks = [part.text for part in parts if isinstance(part, (TextPart, ToolResultPart)) and part.text]
    return "\n".join(chunks)


def _auto_title(text: str) -> str:
    """The first ~TITLE_LENGTH characters of a message on one line, cut at a word boundary when possible."""
    line = " ".join(text.split())
    if len(line) <= TITLE_LENGTH:
        return line
    cut = line[:TITLE_LENGTH]
    space = cut.rfind(" ")
    if space >= TITLE_LENGTH // 2:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + "…"


def fts_query(text: str) -> str:
    """User text as a safe FTS5 query: every word a quoted prefix phrase, all required; "" when nothing is searchable.

    Quotes, AND/OR/NOT/NEAR, parentheses, `*`, `^` and column filters lose their meaning, so no input can raise.
    """
    phrases = []
    for token in text.split():
        if not any(character.isalnum() for character in token):
            continue
        phrases.append('"' + token.replace('"', '""') + '"*')
    return " ".join(phrases)


def _meta_to_json(meta: ReplyMeta | None) -> str | None:
    return None if meta is None else json.dumps(dataclasses.asdict(meta), ensure_ascii=False)


def _meta_from_json(text: str | None) -> ReplyMeta | None:
    if text is None:
        return None
    data = json.loads(text)
    if not isinstance(data, dict):  # damaged by hand or another tool: the message stays readable, the value kept
        return ReplyMeta(extra={"unreadable_meta": data})
    known = {f.name for f in dataclasses.fields(ReplyMeta)}
    extra = dict(data.get("extra") or {})
    extra.update({key: value for key, value in data.items() if key not in known})  # keys from other versions
    values = {key: value for key, value in data.items() if key in known and key != "extra"}
    return ReplyMeta(**values, extra=extra)


def _parts_to_json(parts: Sequence[Part]) -> str:
    return json.dumps([part_to_dict(part) for part in parts], ensure_ascii=False)


class Store:
    """Saved chats and their images. One SQLite connection shared by all threads, guarded by a re-entrant lock."""

    def __init__(self, path: Path, images_dir: Path, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.images_dir = Path(images_dir)
        self.busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        try:
            make_private_dir(self.path.parent)
            make_private_dir(self.images_dir)
            self._make_files_private()
        except OSError as error:
            raise AssistantError(
                f"cannot create the chat store folder {self.path.parent}: {error.strerror or error}; "
                "check its permissions or set ASSISTANT_HOME to a writable folder"
            ) from None
        try:
            conn = sqlite3.connect(
                str(self.path), timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
            )
        except sqlite3.Error as error:
            raise self._translate(error) from None
        try:
            with self._translated():
                self._setup(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _make_files_private(self) -> None:
        """The database file is created 0600 before SQLite opens it (its -wal and -shm copy that mode); existing
        files of ours with other modes, e.g. a 0444 `-shm` left by a read-only spell, are set back to 0600."""
        if not self.path.exists() and not self.path.is_symlink():
            touch_private(self.path)
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                info = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                continue
            mode = stat.S_IMODE(info.st_mode)
            wanted = mode & 0o700 if path == self.path else 0o600  # a store the user made read-only stays so
            if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid() and mode != wanted:
                os.chmod(path, wanted)

    @classmethod
    def open_default(cls) -> "Store":
        """The user's own store (in the user data dir, ASSISTANT_HOME honoured)."""
        from .paths import user_paths

        paths = user_paths().ensure()
        return cls(paths.store_file, paths.images_dir)

    # --- connection, errors, transactions ----------------------------------------------------------------------------

    def _setup(self, conn: sqlite3.Connection) -> None:
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # the first read: fails on a non-database
        self._refuse_newer(version)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")  # stays 'delete' on file systems without shared memory; fine
        conn.execute("PRAGMA synchronous = NORMAL")
        if version < SCHEMA_VERSION:
            self._migrate(conn)
        self._recover_interrupted(conn)

    def _recover_interrupted(self, conn: sqlite3.Connection) -> None:
        """Replies left `streaming` by a process that is gone (kill -9, crash) become `interrupted`, text kept.

        A reply is another live process's while the pid it recorded (WRITER_PID_KEY) still runs.
        """
        rows = conn.execute("SELECT id, meta FROM messages WHERE status = 'streaming'").fetchall()
        orphans = []
        for message_id, meta_json in rows:
            try:
                meta = json.loads(meta_json) if meta_json else {}
                extra = meta.get("extra") if isinstance(meta, dict) else None
                pid = extra.get(WRITER_PID_KEY) if isinstance(extra, dict) else None
            except ValueError:
                meta, extra, pid = {}, None, None
            if isinstance(pid, int) and (pid == os.getpid() or _process_alive(pid)):
                continue
            if not isinstance(meta, dict):
                meta = {}
            extra = extra if isinstance(extra, dict) else {}
            extra.pop(WRITER_PID_KEY, None)
            extra["finish_reason"] = "interrupted"
            meta["extra"] = extra
            orphans.append((json.dumps(meta, ensure_ascii=False), message_id))
        if not orphans:
            return
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "UPDATE messages SET status = 'interrupted', meta = ? WHERE id = ? AND status = 'streaming'", orphans
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as error:  # e.g. a read-only store: the replies stay `streaming` until the next start
            log.warning("could not mark %d interrupted replies: %s", len(orphans), error)

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise AssistantError(
                f"the chat store {self.path} was written by a newer version "
                f"(schema {version}, this version reads up to {SCHEMA_VERSION}); upgrade vlm-assistant"
            )

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
            self._refuse_newer(version)
            for number in range(version + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[number - 1]:
                    try:
                        conn.execute(statement)
                    except sqlite3.OperationalError as error:
                        if _is_locked(error):
                            raise
                        raise AssistantError(
                            f"the chat store {self.path} could not be upgraded to schema {number} ({error}); "
                            "move the file aside and the assistant starts a new one"
                        ) from None
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _translate(self, error: sqlite3.Error) -> AssistantError | sqlite3.Error:
        message = str(error)
        if _is_locked(error):
            return AssistantError(
                f"the chat store {self.path} is locked by another program (waited {self.busy_timeout_s:g} s); "
                "close other assistant windows or commands and try again"
            )
        if "not a database" in message or "malformed" in message:
            return AssistantError(
                f"the chat store {self.path} is not a readable SQLite database ({message}); "
                "move it aside and the assistant starts a new one"
            )
        if "readonly" in message or "read-only" in message:
            return AssistantError(
                f"the chat store {self.path} is read-only ({message}); make the file and its folder writable"
            )
        if "unable to open" in message or "disk I/O" in message or "full" in message:
            return AssistantError(f"the chat store {self.path} cannot be used ({message}); check the disk and the path")
        return error

    @contextlib.contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as error:
            translated = self._translate(error)
            if translated is error:
                raise
            raise translated from None

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """The connection, for reads: lock held, errors a person can act on translated."""
        with self._lock:
            if self._conn is None:
                raise AssistantError("the chat store is closed; open it again")
            with self._translated():
                yield self._conn

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE: waits up to busy_timeout for other writers, then fails clearly)."""
        with self._read() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- conversations -----------------------------------------------------------------------------------------------

    @staticmethod
    def _touch(conn: sqlite3.Connection, conversation_id: int) -> float:
        """Mark a chat as just changed; strictly newer than every other chat, so ordering never ties."""
        newest = conn.execute("SELECT MAX(updated_at) FROM conversations").fetchone()[0] or 0.0
        now = max(time.time(), newest + 1e-6)
        conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id))
        return now

    @staticmethod
    def _require_conversation(conn: sqlite3.Connection, conversation_id: int) -> tuple[Any, ...]:
        row = conn.execute(
            "SELECT id, title, profile, created_at, updated_at FROM conversations WHERE id = ?", (conversation_id,)
        ).fetchone()
        if row is None:
            raise AssistantError(f"no chat with id {conversation_id}; `assistant chats list` shows the saved chats")
        return row

    @staticmethod
    def _clean_tags(tags: Sequence[str]) -> list[str]:
        if isinstance(tags, str):
            tags = [tags]
        cleaned: list[str] = []
        for tag in tags:
            tag = " ".join(str(tag).split())
            if tag and tag.casefold() not in {t.casefold() for t in cleaned}:
                cleaned.append(tag)
        return cleaned

    def create_conversation(self, title: str = "", profile: str = "", tags: Sequence[str] = ()) -> Conversation:
        """A new empty chat (untitled chats get their title from the first user message)."""
        with self._write() as conn:
            newest = conn.execute("SELECT MAX(updated_at) FROM conversations").fetchone()[0] or 0.0
            now = max(time.time(), newest + 1e-6)
            cursor = conn.execute(
                "INSERT INTO conversations (title, profile, created_at, updated_at) VALUES (?, ?, ?, ?)",
                (title.strip(), profile, now, now),
            )
            conversation_id = int(cursor.lastrowid or 0)
            clean = self._clean_tags(tags)
            conn.executemany(
                "INSERT OR IGNORE INTO conversation_tags (conversation_id, tag) VALUES (?, ?)",
                [(conversation_id, tag) for tag in clean],
            )
        return Conversation(
            id=conversation_id, title=title.strip(), profile=profile, created_at=now, updated_at=now, tags=clean
        )

    def get_conversation(self, conversation_id: int) -> Conversation:
        """A saved chat with all its messages in order."""
        with self._read() as conn:
            row = self._require_conversation(conn, conversation_id)
            tags = self._tags_of(conn, [conversation_id]).get(conversation_id, [])
            rows = conn.execute(
                "SELECT id, role, parts, status, rating, correction, meta, created_at FROM messages "
                "WHERE conversation_id = ? ORDER BY id",
                (conversation_id,),
            ).fetchall()
        messages = [self._message_from_row(message_row) for message_row in rows]
        return Conversation(
            id=row[0], title=row[1], profile=row[2], created_at=row[3], updated_at=row[4], messages=messages, tags=tags
        )

    def _message_from_row(self, row: tuple) -> Message:
        message_id, role, parts_json, status, rating, correction, meta_json, created_at = row
        try:
            parts = [part_from_dict(item) for item in json.loads(parts_json)]
            meta = _meta_from_json(meta_json)
        except (ValueError, TypeError, AttributeError, KeyError, RecursionError) as error:
            raise AssistantError(
                f"message {message_id} in the chat store {self.path} cannot be read ({error}); "
                "it may come from a newer vlm-assistant: upgrade it"
            ) from None
        return Message(
            role=role,
            parts=parts,
            id=message_id,
            created_at=created_at,
            status=status,
            rating=rating,
            correction=correction,
            meta=meta,
        )

    @staticmethod
    def _tags_of(conn: sqlite3.Connection, conversation_ids: Sequence[int]) -> dict[int, list[str]]:
        tags: dict[int, list[str]] = {}
        if not conversation_ids:
            return tags
        marks = ",".join("?" * len(conversation_ids))
        for conversation_id, tag in conn.execute(
            f"SELECT conversation_id, tag FROM conversation_tags WHERE conversation_id IN ({marks}) ORDER BY tag",
            list(conversation_ids),
        ):
            tags.setdefault(conversation_id, []).append(tag)
        return tags

    def list_conversations(self, limit: int | None = None, tag: str | None = None) -> list[ChatSummary]:
        """Saved chats, most recently changed first; only those with `tag` when given."""
        sql = (
            "SELECT c.id, c.title, c.profile, c.created_at, c.updated_at, "
            "(SELECT COUNT(*) FROM messages m WHERE m.conversation_id = c.id) FROM conversations c"
        )
        params: list[Any] = []
        if tag is not None:
            sql += " WHERE c.id IN (SELECT conversation_id FROM conversation_tags WHERE tag = ?)"
            params.append(" ".join(tag.split()))
        sql += " ORDER BY c.updated_at DESC, c.id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(max(0, int(limit)))
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
            tags = self._tags_of(conn, [row[0] for row in rows])
        return [ChatSummary(*row, tags=tags.get(row[0], [])) for row in rows]

    def rename_conversation(self, conversation_id: int, title: str) -> None:
        with self._write() as conn:
            self._require_conversation(conn, conversation_id)
            conn.execute("UPDATE conversations SET title = ? WHERE id = ?", (" ".join(title.split()), conversation_id))
            self._touch(conn, conversation_id)

    def add_tags(self, conversation_id: int, tags: Sequence[str]) -> None:
        """Tag a chat (tags compare case-insensitively; adding one twice is harmless)."""
        with self._write() as conn:
            self._require_conversation(conn, conversation_id)
            conn.executemany(
                "INSERT OR IGNORE INTO conversation_tags (conversation_id, tag) VALUES (?, ?)",
                [(conversation_id, tag) for tag in self._clean_tags(tags)],
            )
            self._touch(conn, conversation_id)

    def remove_tags(self, conversation_id: int, tags: Sequence[str]) -> None:
        with self._write() as conn:
            self._require_conversation(conn, conversation_id)
            conn.executemany(
                "DELETE FROM conversation_tags WHERE conversation_id = ? AND tag = ?",
                [(conversation_id, tag) for tag in self._clean_tags(tags)],
            )
            self._touch(conn, conversation_id)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete a chat with its messages, and the image files that no other message references."""
        with self._write() as conn:
            self._require_conversation(conn, conversation_id)
            shas = [
                row[0]
                for row in conn.execute(
                    "SELECT DISTINCT mi.sha256 FROM message_images mi JOIN messages m ON m.id = mi.message_id "
                    "WHERE m.conversation_id = ?",
                    (conversation_id,),
                )
            ]
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            # Files go while the write lock is held, so a put_image in another process cannot interleave.
            self._unlink_images(self._forget_unreferenced(conn, shas))

    # --- messages ----------------------------------------------------------------------------------------------------

    @staticmethod
    def _write_images(conn: sqlite3.Connection, message_id: int, parts: Sequence[Part]) -> None:
        conn.execute("DELETE FROM message_images WHERE message_id = ?", (message_id,))
        conn.executemany(
            "INSERT OR IGNORE INTO message_images (message_id, sha256) VALUES (?, ?)",
            [(message_id, part.sha256) for part in parts if isinstance(part, ImagePart)]
            + [(message_id, sha) for part in parts if isinstance(part, VideoPart) for sha in part.frames],
        )

    def add_message(self, conversation_id: int, message: Message) -> Message:
        """Append a message to a chat; sets `message.id`. An untitled chat takes its title from the first user text."""
        if message.role not in ROLES:
            raise ValueError(f"unknown message role {message.role!r}")
        with self._write() as conn:
            row = self._require_conversation(conn, conversation_id)
            cursor = conn.execute(
                "INSERT INTO messages (conversation_id, role, parts, text, status, rating, correction, meta, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    message.role,
                    _parts_to_json(message.parts),
                    _searchable_text(message.parts),
                    message.status,
                    message.rating,
                    message.correction,
                    _meta_to_json(message.meta),
                    message.created_at,
                ),
            )
            message_id = int(cursor.lastrowid or 0)
            self._write_images(conn, message_id, message.parts)
            if not row[1] and message.role == "user" and message.text.strip():
                conn.execute(
                    "UPDATE conversations SET title = ? WHERE id = ?", (_auto_title(message.text), conversation_id)
                )
            self._touch(conn, conversation_id)
        message.id = message_id
        return message

    def _require_message(self, conn: sqlite3.Connection, message_id: int) -> tuple[int, str]:
        row = conn.execute("SELECT conversation_id, role FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise AssistantError(f"no message with id {message_id}; it may have been deleted")
        return row[0], row[1]

    def update_message(self, message: Message) -> None:
        """Rewrite a saved message's parts, status and meta (while streaming, and when a reply ends)."""
        if message.id is None:
            raise ValueError("update_message needs a saved message (message.id is None); use add_message first")
        with self._write() as conn:
            conversation_id, _ = self._require_message(conn, message.id)
            conn.execute(
                "UPDATE messages SET parts = ?, text = ?, status = ?, meta = ? WHERE id = ?",
                (
                    _parts_to_json(message.parts),
                    _searchable_text(message.parts),
                    message.status,
                    _meta_to_json(message.meta),
                    message.id,
                ),
            )
            self._write_images(conn, message.id, message.parts)
            self._touch(conn, conversation_id)

    def delete_messages_from(self, conversation_id: int, message_id: int) -> None:
        """Delete a message and every later one in its chat (regenerate, edit and resend).

        Image files stay: the edited message usually sends the same images again. `prune_images` removes leftovers.
        """
        with self._write() as conn:
            self._require_conversation(conn, conversation_id)
            owner, _ = self._require_message(conn, message_id)
            if owner != conversation_id:
                raise AssistantError(f"message {message_id} is not in chat {conversation_id}; nothing was deleted")
            conn.execute("DELETE FROM messages WHERE conversation_id = ? AND id >= ?", (conversation_id, message_id))
            self._touch(conn, conversation_id)

    def _require_assistant_message(self, conn: sqlite3.Connection, message_id: int, what: str) -> int:
        conversation_id, role = self._require_message(conn, message_id)
        if role != "assistant":
            raise AssistantError(f"message {message_id} is a {role} message; only assistant replies can be {what}")
        return conversation_id

    def set_rating(self, message_id: int, rating: int) -> None:
        """Rate an assistant reply: +1 good, -1 bad, 0 clears the rating."""
        if rating not in (-1, 0, 1):
            raise AssistantError(f"a rating is -1, 0 or +1, not {rating}")
        with self._write() as conn:
            conversation_id = self._require_assistant_message(conn, message_id, "rated")
            conn.execute("UPDATE messages SET rating = ? WHERE id = ?", (int(rating), message_id))
            self._touch(conn, conversation_id)

    def set_correction(self, message_id: int, text: str | None) -> None:
        """Store the user's corrected text for an assistant reply (None removes it); training uses it instead."""
        with self._write() as conn:
            conversation_id = self._require_assistant_message(conn, message_id, "corrected")
            conn.execute("UPDATE messages SET correction = ? WHERE id = ?", (text, message_id))
            self._touch(conn, conversation_id)

    # --- search ------------------------------------------------------------------------------------------------------

    def search(self, text: str, limit: int = 50) -> list[SearchHit]:
        """Messages, corrections and chat titles containing every word of `text` (word prefixes match).

        Title-only hits come first; a hit in a reply's correction has a snippet starting "correction: ".
        """
        query = fts_query(text)
        if not query or limit <= 0:
            return []
        with self._read() as conn:
            title_rows = conn.execute(
                "SELECT c.id, 0, c.title, highlight(conversations_fts, 0, '«', '»') "
                "FROM conversations_fts JOIN conversations c ON c.id = conversations_fts.rowid "
                "WHERE conversations_fts MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            ).fetchall()
            message_rows = conn.execute(
                "SELECT m.conversation_id, m.id, c.title, snippet(messages_fts, 0, '«', '»', '…', 12) "
                "FROM messages_fts JOIN messages m ON m.id = messages_fts.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                "WHERE messages_fts MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            ).fetchall()
            correction_rows = conn.execute(
                "SELECT m.conversation_id, m.id, c.title, 'correction: ' || snippet(corrections_fts, 0, '«', '»', '…', 12) "
                "FROM corrections_fts JOIN messages m ON m.id = corrections_fts.rowid "
                "JOIN conversations c ON c.id = m.conversation_id "
                "WHERE corrections_fts MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            ).fetchall()
        found_messages = {row[1] for row in message_rows}
        message_rows += [row for row in correction_rows if row[1] not in found_messages]
        found_in_messages = {row[0] for row in message_rows}
        # An auto-title repeats the first message: a title hit only counts for chats no message hit already shows.
        title_rows = [row for row in title_rows if row[0] not in found_in_messages]
        return [SearchHit(*row) for row in (title_rows + message_rows)[:limit]]

    # --- images ------------------------------------------------------------------------------------------------------

    def image_path(self, sha256: str) -> Path:
        """Where the stored image with this hash lives (it may be missing if deleted outside the assistant)."""
        if not _SHA256.fullmatch(sha256):
            raise AssistantError(f"{sha256!r} is not an image hash from the chat store")
        folder = self.images_dir / sha256[:2]
        with self._read() as conn:
            row = conn.execute("SELECT ext FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        if row is not None:
            return folder / f"{sha256}.{row[0]}"
        for extension in _IMAGE_EXTENSIONS:
            candidate = folder / f"{sha256}.{extension}"
            if candidate.exists():
                return candidate
        return folder / f"{sha256}.png"

    def put_image(self, image: LoadedImage) -> ImagePart:
        """Keep an image's bytes in the store (once per content) and return the part that refers to it."""
        digest = hashlib.sha256(image.data).hexdigest()
        if digest != image.sha256:
            raise ValueError(f"LoadedImage.sha256 {image.sha256} does not match its data ({digest})")
        extension = image_extension(image.data)
        path = self.images_dir / digest[:2] / f"{digest}.{extension}"
        with self._write() as conn:  # the file is written under the write lock, like deletions
            if not (path.is_file() and path.stat().st_size == len(image.data)):
                self._write_file_atomically(path, image.data)
            conn.execute(
                "INSERT OR IGNORE INTO images (sha256, ext, width, height, size, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (digest, extension, image.width, image.height, len(image.data), time.time()),
            )
        return ImagePart(sha256=digest, width=image.width, height=image.height, source=image.source)

    def _write_file_atomically(self, path: Path, data: bytes) -> None:
        try:
            make_private_dir(path.parent)
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".incoming-", suffix=path.suffix)
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(data)
                    file.flush()
                    os.fsync(file.fileno())
                os.replace(temporary, path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            raise AssistantError(
                f"cannot save the image in {path.parent}: {error.strerror or error}; check free disk space and "
                "permissions"
            ) from None

    def open_image(self, part: ImagePart) -> Image.Image:
        """The stored image of a part, decoded to RGB."""
        path = self.image_path(part.sha256)
        name = part.source or part.sha256[:12]
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise AssistantError(
                f"image {name} is missing from the chat store ({path} was deleted outside the assistant); "
                "attach it again"
            ) from None
        except OSError as error:
            raise AssistantError(f"cannot read the stored image {path}: {error.strerror or error}") from None
        return decode_image_bytes(data, str(path))

    def _forget_unreferenced(self, conn: sqlite3.Connection, shas: Sequence[str]) -> list[Path]:
        """Drop the image rows no message references any more; returns their files (unlinked after the commit)."""
        paths: list[Path] = []
        for sha in shas:
            if conn.execute("SELECT 1 FROM message_images WHERE sha256 = ? LIMIT 1", (sha,)).fetchone():
                continue
            row = conn.execute("SELECT ext FROM images WHERE sha256 = ?", (sha,)).fetchone()
            conn.execute("DELETE FROM images WHERE sha256 = ?", (sha,))
            extensions = [row[0]] if row else list(_IMAGE_EXTENSIONS)
            paths.extend(self.images_dir / sha[:2] / f"{sha}.{extension}" for extension in extensions)
        return paths

    @staticmethod
    def _unlink_images(paths: Sequence[Path]) -> None:
        for path in paths:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            with contextlib.suppress(OSError):
                path.parent.rmdir()  # only succeeds when the folder is empty

    def prune_images(self) -> int:
        """Delete stored images no message references (left by deleted messages); returns how many."""
        with self._write() as conn:
            shas = [
                row[0]
                for row in conn.execute(
                    "SELECT sha256 FROM images WHERE sha256 NOT IN (SELECT sha256 FROM message_images)"
                )
            ]
            self._unlink_images(self._forget_unreferenced(conn, shas))
        return len(shas)

    # --- export ------------------------------------------------------------------------------------------------------

    def export_markdown(self, conversation_id: int) -> str:
        """A chat as Markdown: title, one heading per message, images linked to their stored files."""
        conversation = self.get_conversation(conversation_id)
        lines = [f"# {conversation.title or 'Untitled chat'}", ""]
        if conversation.tags:
            lines += ["Tags: " + ", ".join(conversation.tags), ""]
        for message in conversation.messages:
            lines += [f"## {_ROLE_HEADINGS.get(message.role, message.role.title())}", ""]
            for part in message.parts:
                lines += self._markdown_part(part) + [""]
            if message.status != "ok":
                error = message.meta.error if message.meta and message.meta.error else None
                lines += [f"_({message.status}{': ' + error if error else ''})_", ""]
            approval = message.meta.extra.get("approval") if message.meta and message.role == "tool" else None
            if approval:
                lines += [f"_Approval: {approval}_", ""]
            if message.rating:
                lines += ["_Rated " + ("+1 (good)" if message.rating > 0 else "-1 (bad)") + "_", ""]
            if message.correction is not None:
                lines += ["**Correction:**", ""] + [f"> {line}" for line in message.correction.splitlines() or [""]]
                lines += [""]
        return "\n".join(lines).rstrip("\n") + "\n"

    def _markdown_part(self, part: Part) -> list[str]:
        if isinstance(part, TextPart):
            return [part.text]
        if isinstance(part, ImagePart):
            label = (part.source or part.sha256[:12]).replace("]", "\\]")
            return [f"![{label}]({self.image_path(part.sha256).as_uri()}) ({part.width}x{part.height})"]
        if isinstance(part, VideoPart):
            from .video import describe

            return [f"_Video: {describe(part)}_"]
        if isinstance(part, ToolCallPart):
            arguments = json.dumps(part.arguments, ensure_ascii=False, indent=2)
            return [f"**Tool call** `{part.name}`" + (f" ({part.call_id})" if part.call_id else ""), "", "```json",
                    arguments, "```"]
        if isinstance(part, ToolResultPart):
            heading = "**Tool error**" if part.is_error else "**Tool result**"
            fence = "````" if "```" in part.text else "```"
            return [f"{heading} `{part.name}`", "", fence, part.text, fence]
        return [str(part)]

    def export_jsonl(self, conversation_id: int) -> str:
        """A chat as one JSON line: id, title, tags and messages (role, parts, status, rating, correction, meta)."""
        conversation = self.get_conversation(conversation_id)
        record = {
            "id": conversation.id,
            "title": conversation.title,
            "profile": conversation.profile,
            "created_at": conversation.created_at,
            "updated_at": conversation.updated_at,
            "tags": conversation.tags,
            "messages": [
                {
                    "role": message.role,
                    "parts": [part_to_dict(part) for part in message.parts],
                    "status": message.status,
                    "rating": message.rating,
                    "correction": message.correction,
                    "meta": None if message.meta is None else dataclasses.asdict(message.meta),
                    "created_at": message.created_at,
                }
                for message in conversation.messages
            ],
        }
        return json.dumps(record, ensure_ascii=False) + "\n"


def _process_alive(pid: int) -> bool:
    """Whether a process with this id runs (a pid reused since is taken as alive: the reply is left for later)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. PermissionError: it exists, owned by someone else
        return True
    return True


def _is_locked(error: sqlite3.Error) -> bool:
    message = str(error)
    return "locked" in message or "busy" in message
