"""Training examples from saved chats: selection, corrections, exclusions, counts, split and fingerprint.

Pure Python (no torch): an Example is a list of stored Messages plus which assistant replies to learn from.
The images stay where they are (the chat store, files of an imported dataset, or memory) behind an ImageLibrary.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Literal, Sequence

from assistant.conversation import Conversation, ImagePart, Message, TextPart, ToolCallPart
from assistant.errors import AssistantError

if TYPE_CHECKING:
    from PIL.Image import Image

    from assistant.images import LoadedImage
    from assistant.store import Store

Mode = Literal["all", "rated", "corrected"]

# Why a chat gave no example (the keys of DatasetStats.skipped); the error for "no usable examples" says them.
NO_REPLY = "no assistant reply"
NOT_RATED = "no reply rated up"
NOT_CORRECTED = "no corrected reply"
ONLY_RATED_DOWN = "only rated-down replies"
MISSING_IMAGE = "an image is missing from the store"
EMPTY_REPLY = "only empty or unfinished replies"
TOO_LONG = "more tokens than the model's context"
NOTHING_LEARNED = "replies the chat template cannot separate from the prompt"
VIDEO = "a video (training on videos is not supported yet)"


@dataclass
class DataSelection:
    """Which data to train on: chats from the store (ids, tag, rated, corrected) or a jsonl dataset file."""

    chats: list[int] = field(default_factory=list)
    tag: str | None = None
    rated: bool = False
    """Learn only replies rated up (the rest of those chats is context)."""
    corrected: bool = False
    """Learn only replies the user corrected."""
    data_file: str | None = None
    data_format: str = "auto"

    @property
    def mode(self) -> Mode:
        return "corrected" if self.corrected else "rated" if self.rated else "all"

    def describe(self) -> str:
        if self.data_file:
            return f"dataset {self.data_file}"
        what = []
        if self.chats:
            what.append("chats " + format_ids(self.chats))
        if self.tag:
            what.append(f"tag {self.tag!r}")
        if not what:
            what.append("all saved chats")
        if self.rated:
            what.append("replies rated up")
        if self.corrected:
            what.append("corrected replies")
        return ", ".join(what)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DataSelection":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass
class Example:
    """One conversation to learn from: its messages, and the indices of the assistant replies to learn."""

    messages: list[Message]
    targets: list[int]
    source: str
    """Where it came from, for messages: `chat 12`, `train.jsonl line 3`."""
    conversation_id: int | None = None


@dataclass
class DatasetStats:
    """Counts shown before training (tokens are added once a processor has seen the examples)."""

    chats_seen: int = 0
    conversations: int = 0
    turns: int = 0
    images: int = 0
    tokens: int = 0
    target_tokens: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    turns_excluded: dict[str, int] = field(default_factory=dict)
    """Replies left out of chats that were used (rated down, unfinished), by reason."""

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count

    def exclude(self, reason: str, count: int = 1) -> None:
        self.turns_excluded[reason] = self.turns_excluded.get(reason, 0) + count

    def warnings(self) -> list[str]:
        """One line per problem a person may want to fix (missing images first)."""
        lines = []
        if self.skipped.get(MISSING_IMAGE):
            count = self.skipped[MISSING_IMAGE]
            lines.append(
                f"skipped {count} chat{'s' if count != 1 else ''} whose image is missing from the store "
                "(deleted outside the assistant)"
            )
        if self.skipped.get(VIDEO):
            count = self.skipped[VIDEO]
            lines.append(f"{count} chat{'s' if count != 1 else ''} with videos skipped: training on videos is not "
                         "supported yet")
        for reason in (TOO_LONG, NOTHING_LEARNED):
            if self.skipped.get(reason):
                lines.append(f"skipped {self.skipped[reason]} chat{'s' if self.skipped[reason] != 1 else ''}: {reason}")
        for reason, count in sorted(self.turns_excluded.items()):
            lines.append(f"left out {count} repl{'ies' if count != 1 else 'y'}: {reason}")
        return lines

    def summary(self) -> str:
        line = (
            f"{self.conversations} conversation{'s' if self.conversations != 1 else ''}, "
            f"{self.turns} assistant turn{'s' if self.turns != 1 else ''}, {self.images} image"
            f"{'s' if self.images != 1 else ''}"
        )
        if self.tokens:
            line += f", {self.tokens} tokens ({self.target_tokens} trained)"
        return line


class ImageLibrary:
    """The images of a dataset by sha256: files of an imported dataset, in-memory images, or the chat store."""

    def __init__(self, store: "Store | None" = None) -> None:
        self.store = store
        self._files: dict[str, Path] = {}
        self._memory: dict[str, "Image"] = {}

    def add_file(self, loaded: "LoadedImage", path: Path) -> ImagePart:
        """Remember where an image file is (its bytes are read again only when training needs it)."""
        self._files[loaded.sha256] = Path(path)
        return ImagePart(sha256=loaded.sha256, width=loaded.width, height=loaded.height, source=Path(path).name)

    def add_image(self, loaded: "LoadedImage") -> ImagePart:
        self._memory[loaded.sha256] = loaded.image
        return ImagePart(sha256=loaded.sha256, width=loaded.width, height=loaded.height, source=loaded.source)

    def include(self, other: "ImageLibrary") -> None:
        """Also serve `other`'s file and in-memory images (a --val-data file next to the training data)."""
        self._files.update(other._files)
        self._memory.update(other._memory)

    def has(self, part: ImagePart) -> bool:
        if part.sha256 in self._memory or part.sha256 in self._files:
            return True
        if self.store is None:
            return False
        try:
            return self.store.image_path(part.sha256).is_file()
        except AssistantError:
            return False

    def open(self, part: ImagePart) -> "Image":
        """The image as RGB; raises AssistantError when it is gone."""
        if part.sha256 in self._memory:
            return self._memory[part.sha256]
        if part.sha256 in self._files:
            from assistant.images import load_image_file

            return load_image_file(self._files[part.sha256]).image
        if self.store is None:
            raise AssistantError(f"image {part.source or part.sha256[:12]} is not part of this dataset")
        return self.store.open_image(part)


@dataclass
class Dataset:
    examples: list[Example]
    images: ImageLibrary
    stats: DatasetStats
    selection: DataSelection

    def fingerprint(self, system_prompt: str = "") -> str:
        """sha256 of everything training reads: messages as the model sees them, targets, image hashes."""
        return fingerprint_examples(self.examples, system_prompt)


# --- one conversation -> one example ------------------------------------------------------------------------------


def _has_reply(message: Message) -> bool:
    return bool(message.training_text.strip()) or bool(message.tool_calls)


def conversation_example(
    conversation: Conversation, mode: Mode = "all", stats: DatasetStats | None = None
) -> tuple[Example | None, str]:
    """The example a saved chat gives (or None and the reason).

    A correction replaces the reply's text (and makes even a failed or stopped reply learnable). A reply rated
    down without a correction is excluded and ends the example: later turns were built on a bad answer.
    Failed and unfinished replies are dropped; stopped ones stay as context but are not learned.
    """
    kept: list[Message] = []
    targets: list[int] = []
    excluded: dict[str, int] = {}
    replies = 0
    rated_down = False
    for message in conversation.messages:
        if message.role != "assistant":
            kept.append(message)
            continue
        replies += 1
        corrected = message.correction is not None and bool(message.correction.strip())
        if message.rating < 0 and not corrected:
            rated_down = True
            excluded["rated down (the chat's later turns are left out too)"] = 1
            break
        if corrected:
            message = dataclasses.replace(message, status="ok")
        elif message.status in ("failed", "streaming") or not _has_reply(message):
            excluded["failed, unfinished or empty"] = excluded.get("failed, unfinished or empty", 0) + 1
            continue
        learnable = message.status == "ok" and _has_reply(message)
        if mode == "rated":
            learnable = learnable and message.rating > 0
        elif mode == "corrected":
            learnable = learnable and corrected
        kept.append(message)
        if learnable:
            targets.append(len(kept) - 1)
    if not targets:
        if replies == 0:
            reason = NO_REPLY
        elif mode == "rated":
            reason = NOT_RATED
        elif mode == "corrected":
            reason = NOT_CORRECTED
        else:
            reason = ONLY_RATED_DOWN if rated_down else EMPTY_REPLY
        return None, reason
    kept = kept[: targets[-1] + 1]
    if stats is not None:
        for reason, count in excluded.items():
            stats.exclude(reason, count)
    return Example(kept, targets, f"chat {conversation.id}", conversation.id), ""


def has_video(conversation: Conversation) -> bool:
    """Whether a chat holds a video: the trainer cannot feed video frames to the processor yet, so it is skipped
    (counted, with a warning) rather than trained with the video's placeholder and no frames."""
    return any(message.videos for message in conversation.messages)


def example_images(example: Example) -> list[ImagePart]:
    return [part for message in example.messages for part in message.images]


def add_example(dataset_examples: list[Example], stats: DatasetStats, example: Example) -> None:
    dataset_examples.append(example)
    stats.conversations += 1
    stats.turns += len(example.targets)
    stats.images += len(example_images(example))


# --- selections ----------------------------------------------------------------------------------------------------


def parse_ids(text: str | Sequence[int] | None) -> list[int]:
    """`3,5,10-12` -> [3, 5, 10, 11, 12]; a bad piece is an error that shows the expected form."""
    if text is None:
        return []
    if not isinstance(text, str):
        return sorted({int(value) for value in text})
    ids: set[int] = set()
    for piece in text.replace(" ", "").split(","):
        if not piece:
            continue
        try:
            if "-" in piece:
                low, high = (int(value) for value in piece.split("-", 1))
                if high < low:
                    raise ValueError
                ids.update(range(low, high + 1))
            else:
                ids.add(int(piece))
        except ValueError:
            raise AssistantError(f"{piece!r} is not a chat id or range; write ids like 3,5,10-12") from None
    return sorted(ids)


def format_ids(ids: Sequence[int]) -> str:
    """[3, 5, 10, 11, 12] -> `3,5,10-12`."""
    pieces: list[str] = []
    ordered = sorted(set(ids))
    start = previous = None
    for value in ordered + [None]:  # type: ignore[list-item]
        if start is not None and (value is None or value != previous + 1):
            pieces.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if value is not None and start is None:
            start = value
        previous = value
    return ",".join(pieces)


def _selected_conversations(store: "Store", selection: DataSelection) -> list[Conversation]:
    if selection.chats:
        ids = list(selection.chats)
        if selection.tag:
            tagged = {summary.id for summary in store.list_conversations(tag=selection.tag)}
            ids = [chat_id for chat_id in ids if chat_id in tagged]
    else:
        ids = [summary.id for summary in store.list_conversations(tag=selection.tag)]
    return [store.get_conversation(chat_id) for chat_id in sorted(ids)]


def _hook_results(plugins: Any, conversation: Conversation) -> list[Any] | None:
    """What the `conversation_to_examples` implementations return (None when no plugin implements it).

    A plugin that raises stops the build with an error naming it (training on half-converted data would
    silently differ from what the user asked for).
    """
    caller = getattr(plugins.hook, "conversation_to_examples", None)
    implementations = caller.get_hookimpls() if caller is not None else []
    if not implementations:
        return None
    if hasattr(plugins, "call_each"):  # the assistant's manager: each plugin through the guard, results checked
        from assistant.guard import PluginError, disable_hint

        try:
            found = plugins.call_each("conversation_to_examples", conversation=conversation)
        except PluginError as error:
            raise AssistantError(
                f"plugin {error.plugin} failed to turn chat {conversation.id} into training examples ({error.problem}); "
                f"{disable_hint(error.plugin)}"
            ) from None
        return [result for _name, result in found]
    manager = getattr(plugins, "pm", plugins)
    results = []
    for implementation in reversed(implementations):
        name = manager.get_name(implementation.plugin) or repr(implementation.plugin)
        arguments = {"conversation": conversation}
        try:
            result = implementation.function(**{key: arguments[key] for key in implementation.argnames})
        except AssistantError:
            raise
        except Exception as error:  # noqa: BLE001 - a plugin's bug, reported with the plugin's name
            raise AssistantError(
                f"plugin {name} failed to turn chat {conversation.id} into training examples "
                f"({type(error).__name__}: {error}); disable it with ASSISTANT_DISABLE_PLUGINS={name}"
            ) from None
        if result is not None:
            results.append(result)
    return results


def examples_from_hooks(plugins: Any, conversation: Conversation, images: ImageLibrary) -> list[Example] | None:
    """Examples a plugin made from the chat via `conversation_to_examples` (TRL dicts); None when no plugin
    answered, and then the built-in conversion applies."""
    if plugins is None:
        return None
    results = _hook_results(plugins, conversation)
    if not results:
        return None
    from .formats import record_to_messages

    examples = []
    records = [record for result in results for record in result]
    for number, record in enumerate(records, start=1):
        where = f"chat {conversation.id} example {number}"
        messages = record_to_messages(record, images, base_dir=Path.cwd(), where=where)
        targets = [index for index, message in enumerate(messages) if message.role == "assistant" and _has_reply(message)]
        if targets:
            messages = messages[: targets[-1] + 1]
            examples.append(Example(messages, targets, f"chat {conversation.id}", conversation.id))
    return examples


def build_dataset(store: "Store", selection: DataSelection, plugins: Any = None) -> Dataset:
    """The examples of the selected chats (or of `selection.data_file`), with counts; never empty.

    An empty result raises AssistantError saying why each chat was unusable.
    """
    if selection.data_file:
        from .formats import dataset_from_file

        dataset = dataset_from_file(Path(selection.data_file), selection.data_format)
        dataset.selection = selection
        return dataset
    images = ImageLibrary(store)
    stats = DatasetStats()
    examples: list[Example] = []
    conversations = _selected_conversations(store, selection)
    for conversation in conversations:
        stats.chats_seen += 1
        if has_video(conversation):
            stats.skip(VIDEO)
            continue
        custom = examples_from_hooks(plugins, conversation, images)
        if custom is not None:
            candidates = custom
            if not custom:
                stats.skip(NO_REPLY)
        else:
            example, reason = conversation_example(conversation, selection.mode, stats)
            if example is None:
                stats.skip(reason)
                continue
            candidates = [example]
        for candidate in candidates:
            if not all(images.has(part) for part in example_images(candidate)):
                stats.skip(MISSING_IMAGE)
                continue
            add_example(examples, stats, candidate)
    dataset = Dataset(examples, images, stats, selection)
    require_examples(dataset)
    return dataset


def require_examples(dataset: Dataset) -> None:
    """Raise the 'no usable examples' error, with the reasons, when the dataset is empty."""
    if dataset.examples:
        return
    stats = dataset.stats
    selection = dataset.selection
    if stats.chats_seen == 0:
        if selection.data_file:
            raise AssistantError(f"{selection.data_file} holds no conversations; check the file")
        where = f"with tag {selection.tag!r}" if selection.tag else "saved"
        raise AssistantError(
            f"no chats {where} to train on; chat first, import a dataset with `assistant chats import FILE.jsonl`, "
            "or pick chats with --chats/--tag"
        )
    reasons = ", ".join(f"{count} with {reason}" for reason, count in sorted(stats.skipped.items()))
    advice = {
        "rated": "rate good replies up (or drop --rated)",
        "corrected": "correct some replies (or drop --corrected)",
        "all": "chat and get replies first, or pick other chats",
    }[selection.mode]
    raise AssistantError(
        f"no usable training examples in the {stats.chats_seen} selected chat"
        f"{'s' if stats.chats_seen != 1 else ''} ({reasons}); {advice}"
    )


# --- split and fingerprint -----------------------------------------------------------------------------------------


def split_examples(examples: Sequence[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """(train, validation): `fraction` of the chats held out, chosen by `seed`, a chat's examples kept together.

    Examples of one saved chat (a plugin may make several) are one group, so a chat never straddles the two
    sides; each line of a dataset file is its own group. At least one group stays for training.
    """
    if not 0 <= fraction < 1:
        raise AssistantError(f"--val-split must be at least 0 and below 1, not {fraction}")
    groups: dict[Any, list[int]] = {}
    for index, example in enumerate(examples):
        key = ("chat", example.conversation_id) if example.conversation_id is not None else ("source", example.source)
        groups.setdefault(key, []).append(index)
    keys = list(groups)
    count = min(int(len(keys) * fraction), len(keys) - 1)
    if count <= 0:
        return list(examples), []
    random.Random(seed).shuffle(keys)
    held_out = {index for key in keys[:count] for index in groups[key]}
    train = [example for index, example in enumerate(examples) if index not in held_out]
    held = [example for index, example in enumerate(examples) if index in held_out]
    return train, held


def _message_record(message: Message, target: bool) -> dict[str, Any]:
    parts: list[Any] = []
    if message.role == "assistant" and message.correction is not None:
        parts.append(["text", message.correction])
    else:
        for part in message.parts:
            if isinstance(part, ImagePart):
                parts.append(["image", part.sha256])
            elif isinstance(part, TextPart):
                parts.append(["text", part.text])
            elif isinstance(part, ToolCallPart):
                parts.append(["tool_call", part.name, part.arguments])
            else:
                parts.append([part.kind, getattr(part, "text", "")])
    return {"role": message.role, "parts": parts, "status": message.status, "target": target}


def fingerprint_examples(examples: Iterable[Example], system_prompt: str = "") -> str:
    """A stable hash of the training data (what `--resume` checks and the adapter metadata records)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"system_prompt": system_prompt}).encode())
    for example in examples:
        record = [_message_record(message, index in example.targets) for index, message in enumerate(example.messages)]
        digest.update(json.dumps(record, sort_keys=True, ensure_ascii=False, default=str).encode())
        digest.update(b"\n")
    return digest.hexdigest()
