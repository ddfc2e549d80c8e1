"""The public Python API: Assistant (a profile + store + plugins + lazily loaded model), Chat and Reply.

The CLI and the TUI are thin faces over these calls, so a script can do everything they do.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence, Union

from .conversation import Conversation, ImagePart, Message, ReplyMeta, TextPart, ToolCallPart, ToolResultPart, VideoPart
from .errors import AssistantError
from .profiles import GenerationSettings, Profile, check_model_source, load_profile

if TYPE_CHECKING:
    from PIL.Image import Image

    from .engine.engine import Engine
    from .engine.loading import Progress
    from .hooktypes import ModelBackend
    from .geometry import Grounding
    from .images import LoadedImage
    from .plugins import PluginManager
    from .store import Store

log = logging.getLogger(__name__)

ImageInput = Union[str, Path, "Image", "LoadedImage", ImagePart]
"""A path, a PIL image, an already loaded image, or an image part already in the store."""

VideoInput = Union[str, Path, VideoPart]
"""A video file's path, or a video part already in the store (its frames stored, e.g. from `load_video`)."""

UNSAVED_QUESTIONS_FILE = "unsaved-questions.jsonl"
"""In the data dir: questions whose new chat was not kept because its first reply failed before any text."""
UNSAVED_QUESTIONS_KEPT = 200
PARTIAL_SAVE_INTERVAL_S = 0.5
"""A streaming reply's text is saved at most this often (a kill loses no more than this much of it)."""


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
        self._backend: "ModelBackend | None" = None
        self._load_lock = threading.Lock()
        from .libwarnings import route_library_warnings

        route_library_warnings()

    @classmethod
    def from_profile(
        cls,
        name: str | Path | None = None,
        *,
        adapter: str | None = None,
        model: str | None = None,
        store: "Store | None" = None,
        plugins: "PluginManager | None" = None,
        base_url: str | None = None,
    ) -> "Assistant":
        """An assistant for a profile name or .toml path; `model` swaps in another hub id or local path.

        `base_url` sends the chats to an OpenAI-compatible server instead (`model` is then the served name).
        """
        profile = load_profile(name)
        if base_url:
            profile = profile.with_remote(base_url, model)
        elif model:
            check_model_source(model)
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
        return self._backend is not None

    @property
    def backend(self) -> "ModelBackend":
        """The model behind the profile's `[model] backend` (loaded on first use)."""
        return self.load()

    @property
    def engine(self) -> "Engine":
        """The in-process transformers engine, for features only it has (benchmarks, input sizes, adapters' eval).

        Another backend is one clear line saying the feature needs the transformers backend.
        """
        backend = self.load()
        engine = getattr(backend, "engine", None)
        if engine is None:
            from .backends import unsupported

            raise unsupported("this feature (the in-process engine)", backend)
        return engine

    def load(self, progress: "Progress | None" = None) -> "ModelBackend":
        """Load the model through the profile's backend (once; later calls return the same backend)."""
        with self._load_lock:
            if self._backend is None:
                from .backends import load_backend, unsupported

                if not self.profile.model.local_build and self.profile.model.backend == "transformers":
                    check_model_source(self.profile.model.id)
                backend = load_backend(self.profile, self.plugins, progress)
                if self.adapter:
                    if not backend.capabilities.adapters:
                        backend.close()
                        raise unsupported("adapters", backend)
                    backend.set_adapter(self.adapter)
                self._backend = backend
            return self._backend

    def set_adapter(self, name: str | None) -> None:
        """Switch the active LoRA adapter (None: the base model) without reloading the base model."""
        if self._backend is not None:
            if not self._backend.capabilities.adapters:
                from .backends import unsupported

                raise unsupported("adapters", self._backend)
            self._backend.set_adapter(name)
        self.adapter = name

    def load_video(self, path: str | Path, fps: float | None = None, max_frames: int | None = None) -> VideoPart:
        """Sample a video file's frames and store them by content: the part to ask about (`video=`).

        Frames are taken at `fps` frames a second, at most `max_frames` (assistant.video.sample_indices); either
        left None is what the model's video processor is configured for (SmolVLM2: 1 a second, up to 64).
        `max_frames` alone takes that many frames spread uniformly over the whole video.
        Loads the model first: a profile whose model takes no videos is one line, and nothing is stored.
        """
        import dataclasses as _dataclasses

        from .video import VideoSampling, probe_video, sample_video, video_part

        VideoSampling(fps=fps, max_frames=max_frames or 1).check()  # impossible options before anything loads
        probe_video(path)  # a file that is no usable video is one line before the model loads
        backend = self.load()
        if not backend.capabilities.video:
            remote = backend.capabilities.remote
            if remote or backend.name != "transformers":
                raise AssistantError(
                    f"the {backend.name} backend of profile {self.profile.name} does not take videos (its frames are "
                    "not sent as images); use a local SmolVLM2 or Qwen2-VL profile"
                )
            raise AssistantError(
                f"the model of profile {self.profile.name} does not take videos; use a SmolVLM2 or Qwen2-VL profile"
            )
        defaults = getattr(backend, "video_sampling", None)
        sampling = defaults() if defaults is not None else VideoSampling()
        changes: dict[str, Any] = {}
        if fps is not None:
            changes["fps"] = float(fps)
        if max_frames is not None:
            changes["max_frames"] = int(max_frames)
            if fps is None:
                changes["fps"] = None  # uniform over the whole video
        sampling = _dataclasses.replace(sampling, **changes).check()
        sampled = sample_video(path, sampling)
        frames = [self.store.put_image(frame) for frame in sampled.frames]
        return video_part(sampled, frames)

    def prefill_ahead(self, images: Sequence["LoadedImage"], chat: "Chat | None" = None) -> Any:
        """Start the model's work on images the user is still writing a question about (encode-while-typing).

        The transformers backend prefills the chat so far plus these images (the conversation KV cache keeps
        it), so the question sent later with the same images only pays for its own words; other backends that
        can encode ahead just encode the images. Returns a Future, or None when the backend has neither.
        Nothing is stored: an image removed before sending costs nothing but the work done.
        """
        from .hooktypes import GenerationRequest

        if chat is not None and chat.replying:
            return None  # its reply is not finished: the prompt to prefill is not known yet
        backend = self.backend
        prefill = getattr(backend, "prefill_ahead", None)
        if prefill is None:
            encode = getattr(backend, "encode_ahead", None)
            futures = [encode(image.image) for image in images] if encode is not None else []
            return futures[-1] if futures else None
        pending = {image.sha256: image for image in images}
        store = self.store

        def open_image(part: ImagePart) -> Any:
            image = pending.get(part.sha256)  # its bitmap is decoded from the bytes the store will keep: the same pixels
            return image.image if image is not None else store.open_image(part)

        parts: list[Any] = [ImagePart(image.sha256, image.width, image.height, image.source) for image in images]
        history = list(chat.conversation.messages) if chat is not None else []
        request = GenerationRequest(
            messages=[*history, Message(role="user", parts=[*parts, TextPart("")])],
            open_image=open_image,
            settings=self.profile.generation,
            max_new_tokens=1,
            system_prompt=self.profile.chat.system_prompt,
        )
        return prefill(request)

    # --- chats ---------------------------------------------------------------------------------

    def chat(self, chat_id: int | None = None, title: str = "") -> "Chat":
        """A new saved conversation, or the saved one with this id.

        A new chat whose first reply fails before any text is not kept (see `Chat.stream`).
        """
        if chat_id is None:
            conversation = self.store.create_conversation(title=title, profile=self.profile.name)
            return Chat(self, conversation, new=True)
        return Chat(self, self.store.get_conversation(chat_id))

    def last_chat(self) -> "Chat":
        """The most recently changed saved chat (`assistant ask -c` continues it)."""
        latest = self.store.list_conversations(limit=1)
        if not latest:
            raise AssistantError("there is no saved chat to continue yet; ask without -c/--chat last to start one")
        return self.chat(latest[0].id)

    def close(self) -> None:
        """Release the model and close the store; the assistant stays usable (the next reply loads again)."""
        with self._load_lock:
            backend, self._backend = self._backend, None
        if backend is not None:
            backend.close()
        if self._store is not None:
            self._store.close()
            self._store = None


@dataclass
class GenerationOptions:
    """Per-reply overrides of the profile's [generation] and [chat] settings; None keeps the profile's value."""

    max_new_tokens: int | None = None
    temperature: float | None = None
    """0: greedy decoding."""
    top_p: float | None = None
    seed: int | None = None
    """Fixes sampling (temperature > 0) so the same question gives the same reply."""
    system: str | None = None
    """System prompt for this reply instead of the profile's `[chat] system_prompt`."""

    def check(self) -> "GenerationOptions":
        """Refuse values the model cannot use, with what to use instead."""
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise AssistantError(f"max_new_tokens = {self.max_new_tokens} must be at least 1")
        if self.temperature is not None and not 0 <= self.temperature <= 100:
            raise AssistantError(f"temperature = {self.temperature} must be between 0 (greedy) and 100")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise AssistantError(f"top_p = {self.top_p} must be above 0 and at most 1")
        if self.seed is not None and self.seed < 0:
            raise AssistantError(f"seed = {self.seed} must not be negative")
        return self

    def settings(self, profile: Profile) -> GenerationSettings:
        """The profile's generation settings with these overrides applied."""
        changes: dict[str, Any] = {
            name: value
            for name, value in (("temperature", self.temperature), ("top_p", self.top_p), ("seed", self.seed))
            if value is not None
        }
        return dataclasses.replace(profile.generation, **changes)

    def system_prompt(self, profile: Profile) -> str:
        return profile.chat.system_prompt if self.system is None else self.system


class Chat:
    """One conversation: ask, stream, regenerate, edit, rate and correct. Every change is saved at once.

    `ask`, `regenerate` and `edit_last` wait for the whole reply and return it; `stream`, `stream_regenerate` and
    `stream_edit_last` return a ReplyStream to iterate. A stream that is closed, left (a `break` out of its loop)
    or garbage-collected stops generating, and its reply is stored as `stopped` with the text generated so far.
    """

    def __init__(self, assistant: Assistant, conversation: Conversation, new: bool = False) -> None:
        self.assistant = assistant
        self.conversation = conversation
        self._new = new
        """Created by Assistant.chat() and nothing kept in it yet: a first reply that fails unkeeps it."""
        self._requested_title = conversation.title
        self._current: "weakref.ReferenceType[ReplyStream] | None" = None
        self._question = ""

    @property
    def id(self) -> int:
        """The chat's id in the store; 0 while it is not saved (a new chat whose first reply failed)."""
        return self.conversation.id or 0

    @property
    def messages(self) -> list[Message]:
        return self.conversation.messages

    def reload(self) -> None:
        self.conversation = self.assistant.store.get_conversation(self.id)

    # --- asking --------------------------------------------------------------------------------

    def ask(self, text: str, images: Sequence[ImageInput] | None = (), **options: Any) -> Reply:
        """Ask and wait for the whole reply (takes the same options as `stream`)."""
        return self.stream(text, images, **options).wait()

    def stream(
        self,
        text: str,
        images: Sequence[ImageInput] | None = (),
        max_new_tokens: int | None = None,
        context_text: str = "",
        extra: dict[str, Any] | None = None,
        tools: Sequence[dict] | None = None,
        *,
        temperature: float | None = None,
        top_p: float | None = None,
        seed: int | None = None,
        system: str | None = None,
        title: str = "",
        video: VideoInput | None = None,
        fps: float | None = None,
        max_frames: int | None = None,
    ) -> "ReplyStream":
        """Ask and receive the reply piece by piece. The question is saved before the model runs.

        `context_text` (e.g. a document's text layer) goes before the question in the same user message.
        `extra` is kept in the reply's metadata (e.g. which PDF pages were used).
        `tools`: function specs the model may call (the agent loop in assistant.agent passes them).
        `temperature`, `top_p`, `seed`, `system`: this reply's sampling and system prompt instead of the profile's.
        `title`: the title of a new untitled chat (default: the question, plus the names in `extra["attached"]`);
        never the context text.
        `video`: a video file (its frames sampled at `fps`, at most `max_frames`, defaults from the model's video
        processor; see `Assistant.load_video`) or a stored VideoPart; it goes before the question.
        A new chat whose first reply fails before any text is not kept: the error says so and where the question
        was written (UNSAVED_QUESTIONS_FILE in the data dir).
        """
        try:  # refused before anything is saved: a new chat is not left behind empty ("(untitled)")
            if not text or not text.strip():
                raise AssistantError("the question is empty; type a question (images alone need one too)")
            options = GenerationOptions(max_new_tokens, temperature, top_p, seed, system).check()
            self._close_current()
            videos = self._video_parts(video, fps, max_frames)
            parts = self._image_parts(images or ()) + videos
            self._check_mixed_media(parts)
        except AssistantError:
            self._unkeep_if_empty()
            raise
        for part in videos:
            if part.truncated:  # said with the reply, so nobody takes the answer for one about the whole video
                note = f"{part.source} ends early at {part.duration:.1f} s (truncated): only that part was seen"
                extra = {**(extra or {}), "notes": [*(extra or {}).get("notes", []), note]}
        body = f"{context_text.rstrip()}\n\n{text}" if context_text.strip() else text
        parts.append(TextPart(body))
        self._ensure_saved()
        if not self.conversation.messages and not self.conversation.title:
            attached = list((extra or {}).get("attached") or [])
            attached += [part.source for part in videos if part.source not in attached]
            self._set_title(title or text, attached)
        user = self.assistant.store.add_message(self.id, Message(role="user", parts=parts))
        self.conversation.messages.append(user)
        self._question = text
        return self._start_reply(options, extra or {}, tools)

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
        self._close_current()
        return self._start_reply(GenerationOptions(max_new_tokens).check(), extra or {}, tools)

    def add_message(self, message: Message) -> Message:
        """Save a message at the end of the chat (the agent stores each tool result with it as a `tool` message)."""
        self._ensure_saved()
        saved = self.assistant.store.add_message(self.id, message)
        self.conversation.messages.append(saved)
        return saved

    def update_message(self, message: Message) -> None:
        """Save changes to a message of this chat (the agent turns a reply's text into its tool-call parts)."""
        self._message(message.id or 0)
        self.assistant.store.update_message(message)

    def regenerate(self, max_new_tokens: int | None = None, **options: Any) -> Reply:
        """Drop the last assistant reply, answer the last user message again and wait for the new reply."""
        return self.stream_regenerate(max_new_tokens, **options).wait()

    def stream_regenerate(self, max_new_tokens: int | None = None, **options: Any) -> "ReplyStream":
        """`regenerate`, streamed: the old reply is deleted at once; iterate the returned stream for the new one."""
        generation = GenerationOptions(max_new_tokens, **options).check()
        self._close_current()
        last_user = self.conversation.last("user")
        if last_user is None:
            raise AssistantError("nothing to regenerate: this chat has no question yet")
        rejected = _rejected_replies(self.conversation.messages[self.conversation.messages.index(last_user) + 1 :])
        self._truncate_after(last_user)
        return self._start_reply(generation, {REJECTED_KEY: rejected} if rejected else {})

    def edit_last(self, text: str, max_new_tokens: int | None = None, **options: Any) -> Reply:
        """Replace the last user message's text (its images stay), answer it again and wait for the reply."""
        return self.stream_edit_last(text, max_new_tokens, **options).wait()

    def stream_edit_last(self, text: str, max_new_tokens: int | None = None, **options: Any) -> "ReplyStream":
        """`edit_last`, streamed: the question is changed and the old reply deleted at once; iterate for the new one."""
        if not text.strip():
            raise AssistantError("the edited question is empty; type a question")
        generation = GenerationOptions(max_new_tokens, **options).check()
        self._close_current()
        last_user = self.conversation.last("user")
        if last_user is None:
            raise AssistantError("nothing to edit: this chat has no question yet")
        self._truncate_after(last_user)
        last_user.parts = [part for part in last_user.parts if not isinstance(part, TextPart)] + [TextPart(text)]
        self.assistant.store.update_message(last_user)
        return self._start_reply(generation, {})

    def rate(self, message_id: int, rating: int) -> None:
        self.assistant.store.set_rating(message_id, rating)
        self._message(message_id).rating = rating

    def correct(self, message_id: int, text: str | None) -> None:
        """Store the user's corrected version of an assistant reply (training data for adapters)."""
        self.assistant.store.set_correction(message_id, text)
        self._message(message_id).correction = text

    def stop(self) -> None:
        """Stop the reply being generated (its text so far is kept, status `stopped`)."""
        current = self._current() if self._current is not None else None
        if current is not None:
            current.cancel()

    @property
    def replying(self) -> bool:
        """A reply of this chat is still being written (a stream not iterated to its end)."""
        current = self._current() if self._current is not None else None
        return current is not None and current.reply is None

    # --- internals -----------------------------------------------------------------------------

    def _close_current(self) -> None:
        """A reply of this chat still open (not iterated to its end) is stopped and stored before the next one."""
        current = self._current() if self._current is not None else None
        if current is not None and current.reply is None:
            current.close()

    def _ensure_saved(self) -> None:
        """Save a chat that was unkept after a failed first reply again, as a new chat."""
        if self.conversation.id is None:
            self.conversation = self.assistant.store.create_conversation(
                title=self._requested_title, profile=self.assistant.profile.name
            )
            self._new = True

    def _set_title(self, text: str, attached: Sequence[str]) -> None:
        from .store import _auto_title

        title = _auto_title(text)
        names = [Path(str(name)).name for name in attached if str(name).strip()]
        if names:
            title = f"{title} — {', '.join(names)}"
        self.assistant.store.rename_conversation(self.id, title)
        self.conversation.title = title

    def _unkeep_if_empty(self) -> None:
        """A new chat that never got a message is deleted (saved again by the next question)."""
        if not self._new or self.conversation.id is None or self.conversation.messages:
            return
        try:
            self.assistant.store.delete_conversation(self.id)
        except AssistantError as error:
            log.warning("could not remove the empty new chat %s: %s", self.id, error)
            return
        self.conversation = Conversation(title=self._requested_title, profile=self.assistant.profile.name)

    def _unkeep_failed_start(self, reply: "ReplyStream") -> str:
        """After a new chat's first reply failed before any text: delete the chat, write the question down.

        Returns what to add to the error message ("" when the chat is kept).
        """
        roles = [message.role for message in self.conversation.messages]
        if not self._new or reply.text or roles != ["user", "assistant"] or reply.message is not self.messages[-1]:
            return ""
        where = ""
        try:
            where = str(_write_unsaved_question(self._question, self.assistant.profile.name))
        except OSError as error:
            log.warning("could not write the unsaved question: %s", error)
        try:
            self.assistant.store.delete_conversation(self.id)
        except AssistantError as error:
            log.warning("could not remove the failed new chat %s: %s", self.id, error)
            return ""
        self.conversation = Conversation(title=self._requested_title, profile=self.assistant.profile.name)
        return f"; the new chat was not kept (your question is in {where})" if where else "; the new chat was not kept"

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

    def _video_parts(self, video: VideoInput | None, fps: float | None, max_frames: int | None) -> list[Any]:
        """The video part to ask about (decoded and its frames stored now), or [] without a video."""
        if video is None:
            if fps is not None or max_frames is not None:
                raise AssistantError("--fps and --max-frames choose a video's frames; give the video with --video FILE")
            return []
        if isinstance(video, VideoPart):
            return [video]
        return [self.assistant.load_video(video, fps, max_frames)]

    def _check_mixed_media(self, new_parts: Sequence[Any]) -> None:
        """Refuse, before the question is saved, a chat that would hold images and videos on a model that cannot
        take both in one prompt (SmolVLM2)."""
        parts = [part for message in self.conversation.messages for part in message.parts] + list(new_parts)
        has_videos = any(isinstance(part, VideoPart) for part in parts)
        has_images = any(not isinstance(part, (VideoPart, TextPart, ToolCallPart, ToolResultPart)) for part in parts)
        if has_videos and has_images and not self.assistant.backend.capabilities.video_with_images:
            from .engine.video_inputs import MIXED_MEDIA

            raise AssistantError(MIXED_MEDIA)

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
        try:
            return [item if isinstance(item, ImagePart) else self.assistant.store.put_image(item) for item in loaded]
        except AssistantError:
            self._unkeep_if_empty()  # the images folder is read-only or full: no empty "(untitled)" chat is left
            raise

    def _start_reply(
        self, options: GenerationOptions, extra: dict[str, Any], tools: Sequence[dict] | None = None
    ) -> "ReplyStream":
        profile = self.assistant.profile
        if options.system is not None:
            extra = {**extra, "system_prompt": options.system}
        meta = ReplyMeta(profile=profile.name, model=profile.model_label, adapter=self.assistant.adapter, extra=extra)
        from .store import WRITER_PID_KEY

        meta.extra = {**meta.extra, WRITER_PID_KEY: os.getpid()}  # a reply whose writer is gone is `interrupted`
        placeholder = Message(role="assistant", parts=[TextPart("")], status="streaming", meta=meta)
        placeholder = self.assistant.store.add_message(self.id, placeholder)
        self.conversation.messages.append(placeholder)
        stream = ReplyStream(self, placeholder, options.max_new_tokens, tools, options)
        self._current = weakref.ref(stream)
        return stream


REJECTED_KEY = "rejected"
"""In a regenerated reply's meta.extra: the replies it replaced that were rated down ({"text", "tool_calls"?}),
kept as preference data (rate the new reply up: it is chosen over them for DPO training)."""


def _rejected_replies(replaced: Sequence[Message]) -> list[dict[str, Any]]:
    """What a regenerate keeps of the replies it deletes: the rated-down one, and those it had replaced itself."""
    first = next((message for message in replaced if message.role == "assistant"), None)
    if first is None:
        return []
    kept = [dict(entry) for entry in (first.meta.extra.get(REJECTED_KEY) or [] if first.meta else [])
            if isinstance(entry, dict)]
    if first.rating < 0 and (first.text.strip() or first.tool_calls):
        entry: dict[str, Any] = {"text": first.text}
        if first.tool_calls:
            entry["tool_calls"] = [{"name": call.name, "arguments": call.arguments} for call in first.tool_calls]
        kept.append(entry)
    return kept


def _write_unsaved_question(text: str, profile: str) -> Path:
    """Append a question to UNSAVED_QUESTIONS_FILE (the newest UNSAVED_QUESTIONS_KEPT are kept)."""
    from .paths import user_paths, write_private

    path = user_paths().ensure().data / UNSAVED_QUESTIONS_FILE
    lines = path.read_text(encoding="utf-8").splitlines() if path.is_file() else []
    lines.append(json.dumps({"time": time.time(), "profile": profile, "question": text}, ensure_ascii=False))
    write_private(path, "\n".join(lines[-UNSAVED_QUESTIONS_KEPT:]) + "\n")
    return path


class ReplyStream:
    """Iterate for text pieces; afterwards `reply` holds the saved Reply. `cancel()` stops it (text kept).

    `wait()` reads it to the end and returns the Reply. Leaving it early (`break`, an exception in the loop),
    `close()`, or dropping it unread stops generation and stores the reply as `stopped`; it can also be used as
    a context manager (`with chat.stream(...) as stream:`), which closes it on the way out.
    """

    def __init__(
        self,
        chat: Chat,
        message: Message,
        max_new_tokens: int | None,
        tools: Sequence[dict] | None = None,
        options: GenerationOptions | None = None,
    ) -> None:
        self.chat = chat
        self.message = message
        self.options = options or GenerationOptions(max_new_tokens)
        self.max_new_tokens = max_new_tokens
        self.tools = list(tools) if tools else None
        self.reply: Reply | None = None
        self._cancel = threading.Event()
        self._text_stream: Any = None
        self._input_sizes: dict[str, tuple[int, int]] = {}
        self._started = False
        self._reader: "weakref.ReferenceType[Iterator[str]] | None" = None
        self.text = ""
        self._saved_at = time.monotonic()

    def cancel(self) -> None:
        """Stop generating after the current token; the reader still receives the end (status `stopped`)."""
        self._cancel.set()
        if self._text_stream is not None:
            self._text_stream.cancel()

    def close(self) -> None:
        """Stop generating and store the reply as `stopped` now, read or not (a finished reply stays as it is)."""
        if self.reply is not None:
            return
        self.cancel()
        reader = self._reader() if self._reader is not None else None
        if reader is not None:
            try:
                reader.close()  # type: ignore[attr-defined]  # GeneratorExit: a started reader stores the reply
            except ValueError:
                return  # being read on another thread right now: cancel() makes that reader end and store it
        if self.reply is None and not self._started:
            self._started = True  # never read: nothing was generated
            self._finish_quietly(None)

    def wait(self) -> Reply:
        """Read the reply to its end and return it."""
        for _ in self:
            pass
        assert self.reply is not None
        return self.reply

    def __enter__(self) -> "ReplyStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if self.reply is None and not getattr(self, "_started", True):
            self._started = True
            self._finish_quietly(None)

    def __iter__(self) -> Iterator[str]:
        reader = self._reader() if self._reader is not None else None
        if reader is not None:
            return reader  # a second loop continues where the first one left off
        if self._started or self.reply is not None:
            return iter(())
        reader = self._read()
        self._reader = weakref.ref(reader)
        return reader

    def _read(self) -> Iterator[str]:
        self._started = True
        assistant = self.chat.assistant
        store = assistant.store
        stats = None
        pieces: Iterator[str] | None = None
        try:
            from .hooktypes import GenerationRequest

            backend = assistant.backend
            started = time.perf_counter()  # TTFT counts input building and prefill, not the one-time model load
            self._text_stream = backend.stream(
                GenerationRequest(
                    messages=self.chat.conversation.messages[:-1],
                    open_image=store.open_image,
                    settings=self.options.settings(assistant.profile),
                    max_new_tokens=self.max_new_tokens,
                    system_prompt=self.options.system_prompt(assistant.profile),
                    tools=self.tools,
                    started_at=started,
                )
            )
            self._input_sizes = self._text_stream.input_sizes
            dropped = self._text_stream.dropped
            if self._cancel.is_set():
                self._text_stream.cancel()
            self.message.meta.extra["reused_tokens"] = self._text_stream.stats.reused_tokens
            if dropped:
                self.message.meta.extra.setdefault("notes", []).append(f"context full: {dropped} older messages left out")
            pieces = iter(self._text_stream)
            for piece in pieces:
                self.text += piece
                self._save_partial()
                yield piece
            stats = self._text_stream.stats
            if stats.fast_steps:
                self.message.meta.extra["fast_decode_steps"] = stats.fast_steps
        except AssistantError as error:
            self._finish(status="failed", error=str(error))
            raise AssistantError(str(error) + self.chat._unkeep_failed_start(self)) from None
        except (GeneratorExit, KeyboardInterrupt, SystemExit):
            # Left early (break, close(), garbage collection) or interrupted: stop the model, keep what it wrote.
            self._stop_and_store(pieces)
            raise
        except Exception as error:  # noqa: BLE001 - a model failure is reported, the chat is kept
            log.exception("generation failed")
            message = f"generation failed: {type(error).__name__}: {error}".splitlines()[0]
            self._finish(status="failed", error=message)
            unkept = self.chat._unkeep_failed_start(self)
            advice = unkept or "; the question is saved, try /regenerate or another profile"
            raise AssistantError(message + advice) from None
        self._finish(status="stopped" if stats.stopped else "ok", stats=stats)

    def _save_partial(self) -> None:
        """Store the text so far (status still `streaming`) at most every PARTIAL_SAVE_INTERVAL_S seconds, so a
        kill -9 loses at most that much; a failed save is logged and the reply goes on."""
        now = time.monotonic()
        if now - self._saved_at < PARTIAL_SAVE_INTERVAL_S:
            return
        self._saved_at = now
        self.message.parts = [TextPart(self.text)]
        try:
            self.chat.assistant.store.update_message(self.message)
        except Exception:  # noqa: BLE001 - e.g. the store is busy: the final save still comes
            log.exception("could not save the partial reply")

    def _stop_and_store(self, pieces: Iterator[str] | None) -> None:
        """Cancel generation, wait for the engine to end it (so the next reply can start), store as stopped."""
        text_stream = self._text_stream
        try:
            if text_stream is not None:
                text_stream.cancel()
                if pieces is not None:
                    for piece in pieces:
                        self.text += piece
        except Exception:  # noqa: BLE001 - the reply is still stored below, as stopped
            log.exception("generation failed while stopping an abandoned reply")
        finished = text_stream is not None and getattr(text_stream, "finished", False)
        self._finish_quietly(text_stream.stats if finished else None)

    def _finish_quietly(self, stats: Any) -> None:
        """Store the reply as stopped from a cleanup path (close, garbage collection): errors are logged, not raised."""
        try:
            self._finish(status="stopped", stats=stats)
        except Exception:  # noqa: BLE001 - e.g. the message was deleted meanwhile, or the store is closed
            log.exception("could not store a stopped reply")

    def _finish(self, status: str, stats: Any = None, error: str | None = None) -> None:
        assistant = self.chat.assistant
        message = self.message
        meta = message.meta or ReplyMeta()
        message.parts = [TextPart(self.text)]
        message.status = status  # type: ignore[assignment]
        meta.error = error
        from .store import WRITER_PID_KEY

        meta.extra.pop(WRITER_PID_KEY, None)
        if stats is not None:
            meta.ttft_s = stats.ttft_s
            meta.tokens_per_s = stats.tokens_per_s
            meta.prompt_tokens = stats.prompt_tokens
            meta.completion_tokens = stats.completion_tokens
            meta.extra["finish_reason"] = stats.finish_reason
            if stats.raw_text and stats.raw_text != self.text:
                meta.extra["raw_text"] = stats.raw_text
        elif status == "stopped":
            meta.extra["finish_reason"] = "stopped"
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
