"""Dataset files: read and write TRL conversational and LLaMA-Factory ShareGPT jsonl, import them as saved chats.

TRL:      {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "..."}]}, ...],
           "images": ["img/1.png"]}            (also "prompt"/"completion" lists, and string contents)
ShareGPT: {"conversations": [{"from": "human", "value": "<image>..."}, {"from": "gpt", "value": "..."}],
           "system": "...", "images": ["img/1.png"]}
TRL preference: {"prompt": [...messages] or "text", "chosen": [...] or "text", "rejected": [...] or "text",
           "images": ["img/1.png"]}    (a chat whose chosen reply is rated up over the rejected one: pairs.py)
Image paths are relative to the jsonl file's folder. Pure Python: no torch.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Literal, Sequence

from assistant.conversation import Conversation, ImagePart, Message, TextPart, ToolCallPart, ToolResultPart
from assistant.errors import AssistantError

from .dataset import (
    DataSelection,
    Dataset,
    DatasetStats,
    Example,
    ImageLibrary,
    add_example,
    conversation_example,
    require_examples,
)
from .pairs import is_preference_record, mark_preferred, preference_chat_record, rejected_entry

if TYPE_CHECKING:
    from assistant.store import Store

Format = Literal["trl", "sharegpt", "trl-preference"]
FORMATS = ("trl", "sharegpt")
"""Formats `write_dataset` writes (preference files come from `write_preference_dataset`)."""
IMAGE_MARKER = "<image>"

_SHAREGPT_ROLES = {
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
    "model": "assistant",
    "bot": "assistant",
    "system": "system",
    "observation": "tool",
    "tool": "tool",
    "function_response": "tool",
    "function_call": "assistant",
}
_ROLE_TO_SHAREGPT = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}
_ROLES = ("system", "user", "assistant", "tool")

ImageSink = Callable[[Any, str], ImagePart]
"""sink(reference, where) -> ImagePart: turns an image reference (path, PIL image, ImagePart) into a stored part."""


@dataclass
class RawMessage:
    role: str
    items: list[tuple[str, Any]] = field(default_factory=list)
    """("text", str), ("image", reference) or ("tool_call", {"name", "arguments"}), in order."""


@dataclass
class RawChat:
    """One parsed line, before its images are loaded."""

    messages: list[RawMessage]
    where: str
    image_refs: list[Any] = field(default_factory=list)
    rejected: dict[str, Any] | None = None
    """A preference line's rejected reply ({"text", "tool_calls"?}); the chat's last reply is the chosen one."""


@dataclass
class ImportResult:
    conversation_ids: list[int]
    messages: int
    images: int
    format: str
    tags: list[str]


# --- parsing ---------------------------------------------------------------------------------------------------------


def detect_format(record: dict[str, Any], where: str) -> Format:
    if is_preference_record(record):
        return "trl-preference"
    if "conversations" in record:
        return "sharegpt"
    if "messages" in record or ("prompt" in record and "completion" in record):
        return "trl"
    raise AssistantError(
        f"{where}: neither TRL (`messages`, `prompt` + `completion`, or `prompt` + `chosen` + `rejected`) nor "
        "ShareGPT (`conversations`); see `assistant chats import --help` for the formats"
    )


def _image_list(record: dict[str, Any], where: str) -> list[Any]:
    images = record.get("images")
    if images is None and record.get("image") is not None:
        images = [record["image"]]
    if images is None:
        return []
    if not isinstance(images, list):
        raise AssistantError(f"{where}: `images` must be a list of image paths")
    return list(images)


def _split_markers(text: str, with_markers: bool) -> list[tuple[str, Any]]:
    """Text with `<image>` markers -> items; markers only count when the record has images."""
    if not with_markers or IMAGE_MARKER not in text:
        return [("text", text)] if text else []
    items: list[tuple[str, Any]] = []
    pieces = text.split(IMAGE_MARKER)
    for index, piece in enumerate(pieces):
        if index:
            items.append(("image", None))
        if piece:
            items.append(("text", piece))
    return items


def _inline_image(part: dict[str, Any]) -> Any:
    for key in ("image", "path", "image_url", "url"):
        value = part.get(key)
        if isinstance(value, dict):
            value = value.get("url") or value.get("path")
        if value is not None:
            return value
    return None


def _trl_items(content: Any, with_markers: bool, where: str) -> list[tuple[str, Any]]:
    if content is None:
        return []
    if isinstance(content, str):
        return _split_markers(content, with_markers)
    if not isinstance(content, list):
        raise AssistantError(f"{where}: a message's `content` must be a string or a list of parts")
    items: list[tuple[str, Any]] = []
    for part in content:
        if isinstance(part, str):
            items.extend(_split_markers(part, with_markers))
            continue
        if not isinstance(part, dict):
            raise AssistantError(f"{where}: content parts must be objects like {{\"type\": \"text\", ...}}")
        kind = part.get("type", "text" if "text" in part else None)
        if kind == "text":
            items.extend(_split_markers(str(part.get("text", "")), with_markers))
        elif kind in ("image", "image_url"):
            items.append(("image", _inline_image(part)))
        else:
            raise AssistantError(f"{where}: unsupported content part type {kind!r} (text and image are supported)")
    return items


def _tool_calls(message: dict[str, Any], where: str) -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for call in message.get("tool_calls") or []:
        function = call.get("function", call) if isinstance(call, dict) else None
        if not isinstance(function, dict) or "name" not in function:
            raise AssistantError(f"{where}: a tool call needs a `name`")
        arguments = function.get("arguments") or {}
        if isinstance(arguments, str):
            try:
                arguments = json.loads(arguments)
            except ValueError:
                arguments = {"raw": arguments}
        items.append(("tool_call", {"name": str(function["name"]), "arguments": arguments}))
    return items


def parse_trl(record: dict[str, Any], where: str) -> RawChat:
    if "messages" in record:
        messages = record["messages"]
    else:
        prompt, completion = record.get("prompt"), record.get("completion")
        prompt = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        completion = [{"role": "assistant", "content": completion}] if isinstance(completion, str) else completion
        if not isinstance(prompt, list) or not isinstance(completion, list):
            raise AssistantError(f"{where}: `prompt` and `completion` must be lists of messages (or strings)")
        messages = list(prompt) + list(completion)
    if not isinstance(messages, list):
        raise AssistantError(f"{where}: `messages` must be a list")
    images = _image_list(record, where)
    raw: list[RawMessage] = []
    for message in messages:
        if not isinstance(message, dict):
            raise AssistantError(f"{where}: every message must be an object with `role` and `content`")
        role = message.get("role")
        if role not in _ROLES:
            raise AssistantError(f"{where}: unknown role {role!r}; use system, user, assistant or tool")
        items = _trl_items(message.get("content"), bool(images), where)
        if role == "assistant":
            items += _tool_calls(message, where)
        raw.append(RawMessage(role, items))
    return _place_images(RawChat(raw, where), images)


def parse_sharegpt(record: dict[str, Any], where: str) -> RawChat:
    turns = record.get("conversations")
    if not isinstance(turns, list):
        raise AssistantError(f"{where}: `conversations` must be a list of {{\"from\": ..., \"value\": ...}} turns")
    images = _image_list(record, where)
    raw: list[RawMessage] = []
    system = record.get("system")
    if isinstance(system, str) and system.strip():
        raw.append(RawMessage("system", [("text", system)]))
    for turn in turns:
        if not isinstance(turn, dict):
            raise AssistantError(f"{where}: every turn must be an object with `from` and `value`")
        speaker = str(turn.get("from", turn.get("role", ""))).lower()
        role = _SHAREGPT_ROLES.get(speaker)
        if role is None:
            raise AssistantError(
                f"{where}: unknown speaker {speaker!r}; use human, gpt, system, observation or function_call"
            )
        value = turn.get("value", turn.get("content", ""))
        if not isinstance(value, str):
            value = json.dumps(value, ensure_ascii=False)
        if speaker == "function_call":
            items = _function_call_items(value)
        else:
            items = _split_markers(value, bool(images))
        raw.append(RawMessage(role, items))
    return _place_images(RawChat(raw, where), images)


def _function_call_items(value: str) -> list[tuple[str, Any]]:
    try:
        call = json.loads(value)
    except ValueError:
        return [("text", value)]
    if isinstance(call, dict) and "name" in call:
        arguments = call.get("arguments") or {}
        return [("tool_call", {"name": str(call["name"]), "arguments": arguments})]
    return [("text", value)]


def _place_images(chat: RawChat, images: list[Any]) -> RawChat:
    """Give every image placeholder its reference from `images`; with no placeholders, images go first in the
    first user message (as most datasets without markers mean)."""
    queue = list(images)
    placeholders = 0
    for message in chat.messages:
        for index, (kind, value) in enumerate(message.items):
            if kind == "image" and value is None:
                placeholders += 1
                if not queue:
                    raise AssistantError(
                        f"{chat.where}: more image placeholders than images (`images` has {len(images)})"
                    )
                message.items[index] = ("image", queue.pop(0))
    if queue:
        if placeholders:
            raise AssistantError(
                f"{chat.where}: {len(images)} images but {placeholders} image placeholder"
                f"{'s' if placeholders != 1 else ''}; they must match"
            )
        first_user = next((message for message in chat.messages if message.role == "user"), None)
        if first_user is None:
            raise AssistantError(f"{chat.where}: images but no user message to attach them to")
        first_user.items[:0] = [("image", reference) for reference in queue]
    chat.image_refs = [value for message in chat.messages for kind, value in message.items if kind == "image"]
    if not any(message.role == "assistant" for message in chat.messages):
        raise AssistantError(f"{chat.where}: no assistant message; every example needs an answer to learn")
    return chat


def parse_record(record: Any, fmt: str, where: str) -> RawChat:
    if not isinstance(record, dict):
        raise AssistantError(f"{where}: each line must be one JSON object")
    chosen = detect_format(record, where) if fmt == "auto" else fmt
    if chosen == "trl":
        return parse_trl(record, where)
    if chosen == "sharegpt":
        return parse_sharegpt(record, where)
    if chosen == "trl-preference":
        chat_record, rejected = preference_chat_record(record, where)
        raw = parse_trl(chat_record, where)
        raw.rejected = rejected_entry(rejected, where)
        return raw
    raise AssistantError(f"unknown dataset format {fmt!r}; use trl, sharegpt, trl-preference or auto")


def read_file(path: Path, fmt: str = "auto") -> list[RawChat]:
    """Every line of a jsonl dataset, parsed and checked (image files must exist) before anything is stored."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise AssistantError(f"dataset file not found: {path}; check the path")
    chats = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(line)
        except RecursionError:
            raise AssistantError(f"{where} is nested too deeply to be a chat; each line must be one chat object") from None
        except ValueError as error:
            raise AssistantError(f"{where} is not JSON ({error}); each line must be one JSON object") from None
        chat = parse_record(record, fmt, where)
        for reference in chat.image_refs:
            _check_reference(reference, path.parent, where)
        chats.append(chat)
    return chats


MAX_LINE_BYTES = 32 * 1024 * 1024
"""A longer line is refused (memory stays bounded: a 1 GB line is never read whole)."""


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(number, text) of each line, read one at a time; a line over MAX_LINE_BYTES or not UTF-8 is one error."""
    try:
        with open(path, "rb") as handle:
            number = 0
            while True:
                raw = handle.readline(MAX_LINE_BYTES + 1)
                if not raw:
                    return
                number += 1
                if len(raw) > MAX_LINE_BYTES:
                    raise AssistantError(
                        f"{path.name} line {number} is longer than {MAX_LINE_BYTES // (1024 * 1024)} MB; "
                        "a dataset line is one chat (images are file paths, not inline data): split or fix the file"
                    )
                try:
                    yield number, raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise AssistantError(
                        f"{path} is not UTF-8 text (line {number}); a dataset is a .jsonl file (one JSON object a line)"
                    ) from None
    except OSError as error:
        raise AssistantError(f"cannot read {path}: {error.strerror or error}") from None


def _check_reference(reference: Any, base_dir: Path, where: str) -> None:
    if not isinstance(reference, str):
        raise AssistantError(f"{where}: image references in a file must be paths, not {type(reference).__name__}")
    if reference.startswith(("http://", "https://")):
        raise AssistantError(f"{where}: remote image {reference} is not supported; download it and use its path")
    if not (base_dir / reference).expanduser().is_file():
        raise AssistantError(f"{where}: image {reference} not found (paths are relative to {base_dir})")


# --- materialising -------------------------------------------------------------------------------------------------


def _resolve_path(reference: str, base_dir: Path) -> Path:
    return (base_dir / reference).expanduser()


def _load_reference(reference: Any, base_dir: Path, where: str) -> tuple[Any, Path | None]:
    """(LoadedImage, path or None) for a path, a PIL image or a LoadedImage."""
    from assistant.images import LoadedImage, image_from_pil, load_image_file

    if isinstance(reference, LoadedImage):
        return reference, None
    if isinstance(reference, (str, Path)):
        if str(reference).startswith(("http://", "https://")):
            raise AssistantError(f"{where}: remote image {reference} is not supported; download it and use its path")
        path = _resolve_path(str(reference), base_dir)
        return load_image_file(path), path
    if hasattr(reference, "convert") and hasattr(reference, "size"):  # a PIL image
        return image_from_pil(reference, "image"), None
    raise AssistantError(f"{where}: unsupported image reference {type(reference).__name__}")


def store_sink(store: "Store", base_dir: Path) -> ImageSink:
    def sink(reference: Any, where: str) -> ImagePart:
        if isinstance(reference, ImagePart):
            return reference
        loaded, _ = _load_reference(reference, base_dir, where)
        return store.put_image(loaded)

    return sink


def library_sink(library: ImageLibrary, base_dir: Path) -> ImageSink:
    def sink(reference: Any, where: str) -> ImagePart:
        if isinstance(reference, ImagePart):
            return reference
        loaded, path = _load_reference(reference, base_dir, where)
        return library.add_file(loaded, path) if path is not None else library.add_image(loaded)

    return sink


def to_messages(chat: RawChat, sink: ImageSink) -> list[Message]:
    messages = []
    for raw in chat.messages:
        parts: list[Any] = []
        for kind, value in raw.items:
            if kind == "image":
                parts.append(sink(value, chat.where))
            elif kind == "tool_call":
                parts.append(ToolCallPart(name=value["name"], arguments=dict(value["arguments"])))
            elif value:
                parts.append(TextPart(str(value)))
        messages.append(Message(role=raw.role, parts=parts))  # type: ignore[arg-type]
    if chat.rejected is not None:
        mark_preferred(messages, chat.rejected, chat.where)
    return messages


def record_to_messages(record: dict[str, Any], library: ImageLibrary, base_dir: Path, where: str) -> list[Message]:
    """A TRL/ShareGPT dict (e.g. from the `conversation_to_examples` hook) as messages; images may be paths,
    PIL images or ImageParts already in the store."""
    chat = parse_record(record, "auto", where)
    return to_messages(chat, library_sink(library, base_dir))


def dataset_from_file(path: Path, fmt: str = "auto") -> Dataset:
    """Train straight from a jsonl file (`--data`), without importing it: every assistant reply is learned."""
    path = Path(path).expanduser()
    chats = read_file(path, fmt)
    library = ImageLibrary()
    sink = library_sink(library, path.parent)
    stats = DatasetStats()
    examples: list[Example] = []
    for chat in chats:
        stats.chats_seen += 1
        conversation = Conversation(messages=to_messages(chat, sink))
        example, reason = conversation_example(conversation, "all", stats)
        if example is None:
            stats.skip(reason)
            continue
        example.source = chat.where
        add_example(examples, stats, example)
    dataset = Dataset(examples, library, stats, DataSelection(data_file=str(path), data_format=fmt))
    require_examples(dataset)
    return dataset


# --- import into the store -----------------------------------------------------------------------------------------


def import_file(store: "Store", path: Path, fmt: str = "auto", tags: Sequence[str] = ()) -> ImportResult:
    """Save every line of a dataset file as a chat tagged `import:<file name>` (plus `tags`).

    All lines are parsed and their image files checked first; if storing fails half-way, the chats this import
    created are deleted again, so an import happens completely or not at all.
    """
    path = Path(path).expanduser()
    chats = read_file(path, fmt)
    if not chats:
        raise AssistantError(f"{path} holds no conversations; each line must be one JSON object")
    all_tags = [f"import:{path.name}", *[tag for tag in tags if tag and tag.strip()]]
    sink = store_sink(store, path.parent)
    created: list[int] = []
    counts = {"messages": 0, "images": 0}
    try:
        for chat in chats:
            messages = to_messages(chat, sink)
            conversation = store.create_conversation(tags=all_tags)
            assert conversation.id is not None
            created.append(conversation.id)
            for message in messages:
                store.add_message(conversation.id, message)
                counts["messages"] += 1
                counts["images"] += len(message.images)
    except BaseException:
        for conversation_id in created:
            try:
                store.delete_conversation(conversation_id)
            except AssistantError:
                pass
        raise
    used_format = fmt if fmt != "auto" else _first_format(path)
    return ImportResult(created, counts["messages"], counts["images"], used_format, all_tags)


def _first_format(path: Path) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            return detect_format(json.loads(line), path.name)
    return "auto"


# --- export ----------------------------------------------------------------------------------------------------------


def _image_file(part: ImagePart, library: ImageLibrary, folder: Path) -> str:
    """Copy an image next to the exported file (once per content); returns its file name."""
    folder.mkdir(parents=True, exist_ok=True)
    existing = list(folder.glob(f"{part.sha256}.*"))
    if existing:
        return existing[0].name
    store = library.store
    source: Path | None = None
    if store is not None:
        try:
            candidate = store.image_path(part.sha256)
            source = candidate if candidate.is_file() else None
        except AssistantError:
            source = None
    if source is not None:
        target = folder / f"{part.sha256}{source.suffix}"
        shutil.copyfile(source, target)
        return target.name
    target = folder / f"{part.sha256}.png"
    library.open(part).save(target, format="PNG")
    return target.name


def _message_text(message: Message) -> str:
    if message.role == "assistant" and message.correction is not None:
        return message.correction
    chunks = []
    for part in message.parts:
        if isinstance(part, TextPart):
            chunks.append(part.text)
        elif isinstance(part, ToolResultPart):
            chunks.append(part.text)
    return "".join(chunks)


def example_to_trl(example: Example, image_name: Callable[[ImagePart], str]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    images: list[str] = []
    for message in example.messages:
        content: list[dict[str, Any]] = []
        corrected = message.role == "assistant" and message.correction is not None
        if not corrected:
            for part in message.images:
                content.append({"type": "image"})
                images.append(image_name(part))
        text = _message_text(message)
        if text:
            content.append({"type": "text", "text": text})
        record: dict[str, Any] = {"role": message.role, "content": content}
        if message.tool_calls and not corrected:
            record["tool_calls"] = [
                {"type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in message.tool_calls
            ]
        messages.append(record)
    result: dict[str, Any] = {"messages": messages}
    if images:
        result["images"] = images
    return result


def example_to_sharegpt(example: Example, image_name: Callable[[ImagePart], str]) -> dict[str, Any]:
    turns: list[dict[str, str]] = []
    images: list[str] = []
    system: list[str] = []
    for message in example.messages:
        if message.role == "system":
            system.append(_message_text(message))
            continue
        corrected = message.role == "assistant" and message.correction is not None
        prefix = ""
        if not corrected:
            for part in message.images:
                prefix += IMAGE_MARKER
                images.append(image_name(part))
        text = _message_text(message)
        if message.tool_calls and not corrected and not text:
            for call in message.tool_calls:
                payload = json.dumps({"name": call.name, "arguments": call.arguments}, ensure_ascii=False)
                turns.append({"from": "function_call", "value": payload})
            continue
        turns.append({"from": _ROLE_TO_SHAREGPT[message.role], "value": prefix + text})
    result: dict[str, Any] = {"conversations": turns}
    if system:
        result["system"] = "\n".join(system)
    if images:
        result["images"] = images
    return result


def write_dataset(
    examples: Iterable[Example], library: ImageLibrary, output: Path, fmt: str, force: bool = False
) -> tuple[int, int]:
    """Write examples as jsonl with images copied to `<output stem>_images/`; returns (lines, images).

    An existing output is replaced only with `force`; nothing is written through a symlink (the file or the
    images folder); the jsonl is written atomically.
    """
    if fmt not in FORMATS:
        raise AssistantError(f"unknown dataset format {fmt!r}; use trl or sharegpt")
    convert = example_to_trl if fmt == "trl" else example_to_sharegpt
    return _write_records(examples, convert, library, output, force)


def write_preference_dataset(
    pairs: Iterable[Any], library: ImageLibrary, output: Path, force: bool = False
) -> tuple[int, int]:
    """Write preference pairs as TRL preference jsonl (`prompt`/`chosen`/`rejected` + `images`), images copied
    as by `write_dataset`; returns (lines, images)."""
    from .pairs import pair_to_trl

    return _write_records(pairs, pair_to_trl, library, output, force)


def _write_records(
    items: Iterable[Any], convert: Callable[[Any, Callable[[ImagePart], str]], dict[str, Any]],
    library: ImageLibrary, output: Path, force: bool,
) -> tuple[int, int]:
    from assistant.outputs import check_output, write_output

    output = Path(output).expanduser()
    output.parent.mkdir(parents=True, exist_ok=True)
    check_output(output, force)
    folder_name = f"{output.stem}_images"
    folder = output.parent / folder_name
    if folder.is_symlink() or (folder.exists() and not folder.is_dir()):
        raise AssistantError(f"{folder} is a symbolic link or not a folder; refusing to write images into it")
    written_images: set[str] = set()

    def image_name(part: ImagePart) -> str:
        name = _image_file(part, library, folder)
        written_images.add(name)
        return f"{folder_name}/{name}"

    lines = [json.dumps(convert(item, image_name), ensure_ascii=False) for item in items]
    write_output(output, "".join(line + "\n" for line in lines), force)
    return len(lines), len(written_images)
