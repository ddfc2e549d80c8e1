"""The public Python API: Assistant (a profile + store + plugins + lazily loaded model), Chat and Reply.

The CLI and the TUI are thin faces over these calls, so a script can do everything they do.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, Union

from .conversation import Conversation, ImagePart, Message, ReplyMeta, TextPart
from .errors import AssistantError
from .profiles import Profile, load_profile

if TYPE_CHECKING:
    from PIL.Image import Image

    from .engine.engine import Engine
    from .engine.loading import Progress
    from .geometry import Grounding
    from .images import LoadedImage
    from .plugins import PluginManager
    from .store import Store

log = logging.getLogger(__name__)

ImageInput = Union[str, Path, "Image", "LoadedImage", ImagePart]
"""A path, a PIL image, an already loaded image, or an image part already in the store."""


@dataclass
class Reply:
    """A finished (or stopped, or failed) assistant reply, as stored."""

    text: str
    conversation_id: int
    message_id: int
    status: str
    ttft_s: float | None = None
    tokens_per_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = ""
    error: str | None = None
    grounding: "Grounding | None" = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def stopped(self) -> bool:
        return self.status == "stopped"

    def footer(self) -> str:
        """One line of timing for display: `TTFT 0.42 s · 31.5 tok/s · 24 tokens`."""
        parts = []
        if self.ttft_s is not None:
            parts.append(f"TTFT {self.ttft_s:.2f} s")
        if self.tokens_per_s is not None:
            parts.append(f"{self.tokens_per_s:.1f} tok/s")
        parts.append(f"{self.completion_tokens} tokens")
        if self.status != "ok":
            parts.append(self.status)
        for note in self.extra.get("notes", []):
            parts.append(str(note))
        return " · ".join(parts)


class Assistant:
    """A profile with its store and plugins; the model is loaded on first use (or by `load()`)."""

    def __init__(
        self,
        profile: Profile,
        store: "Store | None" = None,
        plugins: "PluginManager | None" = None,
        adapter: str | None = None,
    ) -> None:
        self.profile = profile
        self._store = store
        self._plugins = plugins
        self.adapter = adapter
        self._engine: "Engine | None" = None
        self._load_lock = threading.Lock()

    @classmethod
    def from_profile(
        cls,
        name: str | Path | None = None,
        *,
        adapter: str | None = None,
        model: str | None = None,
        store: "Store | None" = None,
        plugins: "PluginManager | None" = None,
    ) -> "Assistant":
        """An assistant for a profile name or .toml path; `model` swaps in another hub id or local path."""
        profile = load_profile(name)
        if model:
            profile = profile.with_model(model)
        return cls(profile, store=store, plugins=plugins, adapter=adapter)

    # --- parts, created on first use -----------------------------------------------------------

    @property
    def store(self) -> "Store":
        if self._store is None:
            from .store import Store

            self._store = Store.open_default()
        return self._store

    @property
    def plugins(self) -> "PluginManager":
        if self._plugins is None:
            from .plugins import create_plugin_manager

            self._plugins = create_plugin_manager(disable=self.profile.plugins.disable)
        return self._plugins

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    @property
    def engine(self) -> "Engine":
        return self.load()

    def load(self, progress: "Progress | None" = None) -> "Engine":
        """Load the model (once; later calls return the same engine)."""
        with self._load_lock:
            if self._engine is None:
                from .engine.engine import Engine

                engine = Engine.load(self.profile, progress)
                if self.adapter:
                    from .adapters import activate_adapter

                    activate_adapter(engine, self.adapter)
                self._engine = engine
            return self._engine

    def set_adapter(self, name: str | None) -> None:
        """Switch the active LoRA adapter (None: the base model) without reloading the base model."""
        from .adapters import activate_adapter

        if self._engine is not None:
            activate_adapter(self._engine, name)
        self.adapter = name

    # --- chats ---------------------------------------------------------------------------------

    def chat(self, chat_id: int | None = None, title: str = "") -> "Chat":
        """A new saved conversation, or the saved one with this id."""
        if chat_id is None:
            conversation = self.store.create_conversation(title=title, profile=self.profile.name)
        else:
            conversation = self.store.get_conversation(chat_id)
        return Chat(self, conversation)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


class Chat:
    """One conversation: ask, stream, regenerate, edit, rate and correct. Every change is saved at once."""

    def __init__(self, assistant: Assistant, conversation: Conversation) -> None:
        self.assistant = assistant
        self.conversation = conversation
        self._current: ReplyStream | None = None

    @property
    def id(self) -> int:
        assert self.conversation.id is not None
        return self.conversation.id

    @property
    def messages(self) -> list[Message]:
        return self.conversation.messages

    def reload(self) -> None:
        self.conversation = self.assistant.store.get_conversation(self.id)

    # --- asking --------------------------------------------------------------------------------

    def ask(self, text: str, images: Sequence[ImageInput] = (), **options: Any) -> Reply:
        """Ask and wait for the whole reply."""
        stream = self.stream(text, images, **options)
        for _ in stream:
            pass
        assert stream.reply is not None
        return stream.reply

    def stream(
        self,
        text: str,
        images: Sequence[ImageInput] = (),
        max_new_tokens: int | None = None,
        context_text: str = "",
        extra: dict[str, Any] | None = None,
        tools: Sequence[dict] | None = None,
    ) -> "ReplyStream":
        """Ask and receive the reply piece by piece. The question is saved before the model runs.

        `context_text` (e.g. a document's text layer) goes before the question in the same user message.
        `extra` is kept in the reply's metadata (e.g. which PDF pages were used).
        `tools`: function specs the model may call (the agent loop in assistant.agent passes them).
        """
        if not text or not text.strip():
            raise AssistantError("the question is empty; type a question (images alone need one too)")
        parts = self._image_parts(images)
        body = f"{context_text.rstrip()}\n\n{text}" if context_text.strip() else text
        parts.append(TextPart(body))
        user = self.assistant.store.add_message(self.id, Message(role="user", parts=parts))
        self.conversation.messages.append(user)
        return self._start_reply(max_new_tokens, extra or {}, tools)

    def continue_reply(
        self,
        max_new_tokens: int | None = None,
        extra: dict[str, Any] | None = None,
        tools: Sequence[dict] | None = None,
    ) -> "ReplyStream":
        """Stream a new assistant reply to the chat as it stands, without a new question.

        The agent loop calls it after storing tool results, so the model continues from them.
        """
        if not self.conversation.messages:
            raise AssistantError("nothing to continue: this chat has no messages yet")
        return self._start_reply(max_new_tokens, extra or {}, tools)

    def add_message(self, message: Message) -> Message:
        """Save a message at the end of the chat (the agent stores each tool result with it as a `tool` message)."""
        saved = self.assistant.store.add_message(self.id, message)
        self.conversation.messages.append(saved)
        return saved

    def update_message(self, message: Message) -> None:
        """Save changes to a message of this chat (the agent turns a reply's text into its tool-call parts)."""
        self._message(message.id or 0)
        self.assistant.store.update_message(message)

    def regenerate(self, max_new_tokens: int | None = None) -> "ReplyStream":
        """Drop the last assistant reply and answer the last user message again."""
        last_user = self.conversation.last("user")
        if last_user is None:
            raise AssistantError("nothing to regenerate: this chat has no question yet")
        self._truncate_after(last_user)
        return self._start_reply(max_new_tokens, {})

    def edit_last(self, text: str, max_new_tokens: int | None = None) -> "ReplyStream":
        """Replace the last user message's text (its images stay) and answer it again."""
        if not text.strip():
            raise AssistantError("the edited question is empty; type a question")
        last_user = self.conversation.last("user")
        if last_user is None:
            raise AssistantError("nothing to edit: this chat has no question yet")
        self._truncate_after(last_user)
        last_user.parts = [part for part in last_user.parts if not isinstance(part, TextPart)] + [TextPart(text)]
        self.assistant.store.update_message(last_user)
        return self._start_reply(max_new_tokens, {})

    def rate(self, message_id: int, rating: int) -> None:
        self.assistant.store.set_rating(message_id, rating)
        self._message(message_id).rating = rating

    def correct(self, message_id: int, text: str | None) -> None:
        """Store the user's corrected version of an assistant reply (training data for adapters)."""
        self.assistant.store.set_correction(message_id, text)
        self._message(message_id).correction = text

    def stop(self) -> None:
        if self._current is not None:
            self._current.cancel()

    # --- internals -----------------------------------------------------------------------------

    def _message(self, message_id: int) -> Message:
        for message in self.conversation.messages:
            if message.id == message_id:
                return message
        raise AssistantError(f"message {message_id} is not part of chat {self.id}")

    def _truncate_after(self, message: Message) -> None:
        index = self.conversation.messages.index(message)
        later = self.conversation.messages[index + 1 :]
        if later and later[0].id is not None:
            self.assistant.store.delete_messages_from(self.id, later[0].id)
        del self.conversation.messages[index + 1 :]

    def _image_parts(self, images: Iterable[ImageInput]) -> list[Any]:
        from .images import LoadedImage, image_from_pil, load_image_file

        loaded: list[Any] = []
        for image in images:
            if isinstance(image, ImagePart):
                loaded.append(image)
            elif isinstance(image, LoadedImage):
                loaded.append(image)
            elif isinstance(image, (str, Path)):
                loaded.append(load_image_file(image))
            else:
                loaded.append(image_from_pil(image, "image"))
        # Every image is checked before anything is saved: a bad file leaves the store untouched.
        return [item if isinstance(item, ImagePart) else self.assistant.store.put_image(item) for item in loaded]

    def _start_reply(
        self, max_new_tokens: int | None, extra: dict[str, Any], tools: Sequence[dict] | None = None
    ) -> "ReplyStream":
        profile = self.assistant.profile
        meta = ReplyMeta(profile=profile.name, model=profile.model_label, adapter=self.assistant.adapter, extra=extra)
        placeholder = Message(role="assistant", parts=[TextPart("")], status="streaming", meta=meta)
        placeholder = self.assistant.store.add_message(self.id, placeholder)
        self.conversation.messages.append(placeholder)
        stream = ReplyStream(self, placeholder, max_new_tokens, tools)
        self._current = stream
        return stream


class ReplyStream:
    """Iterate for text pieces; afterwards `reply` holds the saved Reply. `cancel()` stops it (text kept)."""

    def __init__(
        self, chat: Chat, message: Message, max_new_tokens: int | None, tools: Sequence[dict] | None = None
    ) -> None:
        self.chat = chat
        self.message = message
        self.max_new_tokens = max_new_tokens
        self.tools = list(tools) if tools else None
        self.reply: Reply | None = None
        self._cancel = threading.Event()
        self._text_stream: Any = None
        self._input_sizes: dict[str, tuple[int, int]] = {}
        self.text = ""

    def cancel(self) -> None:
        self._cancel.set()
        if self._text_stream is not None:
            self._text_stream.cancel()

    def __iter__(self) -> Iterator[str]:
        assistant = self.chat.assistant
        store = assistant.store
        stats = None
        try:
            engine = assistant.engine
            started = time.perf_counter()  # TTFT counts input building and prefill, not the one-time model load
            history = self.chat.conversation.messages[:-1]
            options: dict[str, Any] = {"tools": self.tools} if self.tools else {}
            self._text_stream, inputs, dropped = engine.stream(
                history,
                store.open_image,
                assistant.profile.generation,
                max_new_tokens=self.max_new_tokens,
                system_prompt=assistant.profile.chat.system_prompt,
                started_at=started,
                **options,
            )
            self._input_sizes = inputs.input_sizes
            if self._cancel.is_set():
                self._text_stream.cancel()
            self.message.meta.extra["reused_tokens"] = self._text_stream.stats.reused_tokens
            if dropped:
                self.message.meta.extra.setdefault("notes", []).append(f"context full: {dropped} older messages left out")
            for piece in self._text_stream:
                self.text += piece
                yield piece
            stats = self._text_stream.stats
            if stats.fast_steps:
                self.message.meta.extra["fast_decode_steps"] = stats.fast_steps
        except AssistantError as error:
            self._finish(status="failed", error=str(error))
            raise
        except Exception as error:  # noqa: BLE001 - a model failure is reported, the chat is kept
            log.exception("generation failed")
            message = f"generation failed: {type(error).__name__}: {error}".splitlines()[0]
            self._finish(status="failed", error=message)
            raise AssistantError(message + "; the question is saved, try /regenerate or another profile") from None
        self._finish(status="stopped" if stats.stopped else "ok", stats=stats)

    def _finish(self, status: str, stats: Any = None, error: str | None = None) -> None:
        assistant = self.chat.assistant
        message = self.message
        meta = message.meta or ReplyMeta()
        message.parts = [TextPart(self.text)]
        message.status = status  # type: ignore[assignment]
        meta.error = error
        if stats is not None:
            meta.ttft_s = stats.ttft_s
            meta.tokens_per_s = stats.tokens_per_s
            meta.prompt_tokens = stats.prompt_tokens
            meta.completion_tokens = stats.completion_tokens
            meta.extra["finish_reason"] = stats.finish_reason
            if stats.raw_text and stats.raw_text != self.text:
                meta.extra["raw_text"] = stats.raw_text
        grounding = None
        if status != "failed" and self.text:
            grounding = self._ground(meta)
        message.meta = meta
        assistant.store.update_message(message)
        self.reply = Reply(
            text=self.text,
            conversation_id=self.chat.id,
            message_id=message.id or 0,
            status=status,
            ttft_s=meta.ttft_s,
            tokens_per_s=meta.tokens_per_s,
            prompt_tokens=meta.prompt_tokens,
            completion_tokens=meta.completion_tokens,
            finish_reason=str(meta.extra.get("finish_reason", "")),
            error=error,
            grounding=grounding,
            extra=meta.extra,
        )
        if status != "failed":
            assistant.plugins.notify("reply_finished", chat=self.chat, reply=self.reply)

    def _ground(self, meta: ReplyMeta) -> "Grounding | None":
        """Run the profile's grounding parser over the reply; keep the geometry with the stored reply.

        Never raises: the reply is already written, and nothing a parser does may lose or corrupt it. A plugin's
        failure becomes a note naming the plugin; a built-in's bug is logged and noted.
        """
        from .grounding import ground_reply

        try:
            grounding = ground_reply(self.chat, meta.extra.get("raw_text") or self.text, self._input_sizes)
        except AssistantError as error:
            meta.extra.setdefault("notes", []).append(str(error))
            return None
        except Exception as error:  # noqa: BLE001 - a parser bug must not lose the reply
            log.exception("grounding the reply failed")
            meta.extra.setdefault("notes", []).append(
                f"grounding failed: {type(error).__name__}: {error}".splitlines()[0] + " (details in the log)"
            )
            return None
        if grounding is not None and grounding.raw.get("error"):
            meta.extra.setdefault("notes", []).append(str(grounding.raw["error"]))
        if meta.extra.get("grounding_request") and (grounding is None or not grounding.shapes):
            why = "no image in this chat" if grounding is None else "no boxes found"
            meta.extra.setdefault("notes", []).append(why)
        if grounding is not None and grounding.shapes:
            from .geometry import shape_to_dict

            meta.extra["grounding"] = {
                "format": grounding.format,
                "image": grounding.raw.get("image_sha256", ""),
                "image_size": list(grounding.image_size),
                "shapes": [shape_to_dict(shape) for shape in grounding.shapes],
            }
        return grounding
