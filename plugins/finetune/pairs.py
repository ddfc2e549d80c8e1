"""Preference pairs (prompt, chosen reply, rejected reply) from saved chats and from TRL preference files.

Pairs come from what users already do in a chat:
- a correction: the corrected text is chosen, the reply as the model wrote it is rejected;
- a regenerate after rating a reply down: the rated-down reply is kept in the new reply's metadata
  (`meta.extra["rejected"]`, written by `Chat.stream_regenerate`), and once the new reply is rated up it is chosen
  over each of them.
The shared prompt is the conversation before the reply, images included. A TRL preference file
(`prompt`/`chosen`/`rejected` + `images`) imports as chats of that second kind, so both sources train the same way.
Pure Python (no torch).
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from assistant.api import REJECTED_KEY
from assistant.conversation import Conversation, ImagePart, Message, ReplyMeta, TextPart, ToolCallPart
from assistant.errors import AssistantError

from .dataset import DataSelection, Example, ImageLibrary, _selected_conversations, fingerprint_examples, has_video

if TYPE_CHECKING:
    from assistant.store import Store

PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")
NO_PAIRS = "no preference pairs: rate a reply down and regenerate, or correct one"


@dataclass
class PreferencePair:
    """One preference: the same prompt answered by a chosen and a rejected assistant reply."""

    prompt: list[Message]
    chosen: Message
    rejected: Message
    source: str
    """Where it came from, for messages: `chat 12 reply 2`, `prefs.jsonl line 3`."""
    conversation_id: int | None = None
    examples: tuple[Example, Example] = field(init=False, repr=False, compare=False)
    """(chosen, rejected) as training examples that learn only the reply; made once, so encoders may cache them."""

    def __post_init__(self) -> None:
        index = len(self.prompt)
        self.examples = (
            Example(self.prompt + [self.chosen], [index], self.source, self.conversation_id),
            Example(self.prompt + [self.rejected], [index], self.source, self.conversation_id),
        )

    @property
    def images(self) -> list[ImagePart]:
        return [part for message in self.prompt for part in message.images]


@dataclass
class PairSet:
    """Preference pairs with the images they need, and where they came from."""

    pairs: list[PreferencePair]
    images: ImageLibrary
    chats_seen: int = 0
    selection: DataSelection | None = None
    skipped: dict[str, int] = field(default_factory=dict)
    """Pairs (or chats, for videos) left out, by reason (dataset.py's reasons)."""

    def fingerprint(self, system_prompt: str = "") -> str:
        """sha256 of everything DPO reads (what `--resume` checks): both sides of every pair."""
        return pairs_fingerprint(self.pairs, system_prompt)


def pairs_fingerprint(pairs: Iterable[PreferencePair], system_prompt: str = "") -> str:
    examples = [example for pair in pairs for example in pair.examples]
    return hashlib.sha256(("dpo:" + fingerprint_examples(examples, system_prompt)).encode()).hexdigest()


# --- from saved chats ------------------------------------------------------------------------------------------------


def _reply(original: Message, text: str | None = None, tool_calls: Sequence[ToolCallPart] | None = None) -> Message:
    """An assistant reply for one side of a pair: `text` (and tool calls) instead of the original's parts, or the
    original's parts; no rating or correction. The original's metadata stays (an agent reply's offered tools)."""
    if text is None and tool_calls is None:
        parts: list[Any] = [part for part in original.parts if isinstance(part, (TextPart, ToolCallPart))]
    else:
        parts = ([TextPart(text)] if text else []) + list(tool_calls or [])
    return dataclasses.replace(original, parts=parts, id=None, status="ok", rating=0, correction=None)


def rejected_siblings(message: Message) -> list[dict[str, Any]]:
    """The rated-down replies a reply replaced (from its metadata), each {"text": ..., "tool_calls": [...]}."""
    if message.meta is None:
        return []
    entries = message.meta.extra.get(REJECTED_KEY)
    if not isinstance(entries, list):
        return []
    return [entry for entry in entries if isinstance(entry, dict) and (entry.get("text") or entry.get("tool_calls"))]


def _sibling_message(original: Message, entry: dict[str, Any]) -> Message:
    calls = [ToolCallPart(name=str(call.get("name", "")), arguments=dict(call.get("arguments") or {}))
             for call in entry.get("tool_calls") or [] if isinstance(call, dict)]
    return _reply(original, str(entry.get("text") or ""), calls)


def _has_content(message: Message) -> bool:
    return bool(message.text.strip()) or bool(message.tool_calls)


def conversation_pairs(conversation: Conversation) -> list[PreferencePair]:
    """Every preference pair a saved chat holds (see the module docstring), in reply order."""
    pairs: list[PreferencePair] = []
    replies = 0
    for index, message in enumerate(conversation.messages):
        if message.role != "assistant":
            continue
        replies += 1
        prompt = list(conversation.messages[:index])
        if not any(item.role == "user" for item in prompt):
            continue
        source = f"chat {conversation.id} reply {replies}" if conversation.id is not None else f"reply {replies}"
        corrected = message.correction is not None and bool(message.correction.strip())
        siblings = rejected_siblings(message)
        if corrected:
            chosen = _reply(message, message.correction)
            rejected = [_reply(message)] if _has_content(message) and message.text != message.correction else []
        elif message.rating > 0 and message.status == "ok" and _has_content(message):
            chosen, rejected = _reply(message), []
        else:
            continue
        rejected += [_sibling_message(message, entry) for entry in siblings]
        for number, other in enumerate(rejected):
            if other.text == chosen.text and [c.name for c in other.tool_calls] == [c.name for c in chosen.tool_calls]:
                continue  # the same answer twice teaches nothing
            suffix = f" ({number + 1})" if len(rejected) > 1 else ""
            pairs.append(PreferencePair(prompt, chosen, other, source + suffix, conversation.id))
    return pairs


def pairs_from_store(store: "Store", selection: DataSelection) -> PairSet:
    """The preference pairs of the selected chats; an error that says how to make some when there are none."""
    images = ImageLibrary(store)
    pairs: list[PreferencePair] = []
    from .dataset import MISSING_IMAGE, VIDEO

    conversations = _selected_conversations(store, selection)
    missing = videos = 0
    for conversation in conversations:
        if has_video(conversation):
            videos += 1
            continue
        for pair in conversation_pairs(conversation):
            if not all(images.has(part) for part in pair.images):
                missing += 1
                continue
            pairs.append(pair)
    if not pairs:
        where = f" in the {len(conversations)} selected chat{'s' if len(conversations) != 1 else ''}"
        notes = ([f"{missing} skipped: an image is missing from the store"] if missing else []) + (
            [f"{videos} chat{'s' if videos != 1 else ''} with videos skipped"] if videos else [])
        extra = f" ({'; '.join(notes)})" if notes else ""
        raise AssistantError(
            f"{NO_PAIRS}{where}{extra}; or import a TRL preference file with `assistant chats import FILE.jsonl`"
        )
    skipped = {reason: count for reason, count in ((MISSING_IMAGE, missing), (VIDEO, videos)) if count}
    return PairSet(pairs, images, len(conversations), selection, skipped)


# --- TRL preference files ----------------------------------------------------------------------------------------------


def is_preference_record(record: Any) -> bool:
    """Whether a dataset line is in TRL's preference format (has `chosen` or `rejected`)."""
    return isinstance(record, dict) and ("chosen" in record or "rejected" in record)


def _as_messages(value: Any, role: str, name: str, where: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if isinstance(value, list) and all(isinstance(item, dict) for item in value):
        return list(value)
    raise AssistantError(f"{where}: `{name}` must be a string or a list of messages")


def _split_implicit_prompt(chosen: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> int:
    """Length of the shared leading messages of `chosen` and `rejected` (TRL's implicit-prompt form)."""
    shared = 0
    for first, second in zip(chosen, rejected):
        if first != second:
            break
        shared += 1
    return shared


def parse_preference(record: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """(prompt messages, chosen message, rejected message) of a TRL preference line, in TRL's message form.

    Both of TRL's forms are accepted: plain strings (`"prompt": "..."`), and conversational message lists; a line
    without `prompt` whose `chosen` and `rejected` lists share their first messages uses those as the prompt.
    """
    for name in ("chosen", "rejected"):
        if name not in record:
            raise AssistantError(
                f"{where}: no `{name}`; a preference line needs `prompt`, `chosen` and `rejected` (and `images`)"
            )
    chosen = _as_messages(record["chosen"], "assistant", "chosen", where)
    rejected = _as_messages(record["rejected"], "assistant", "rejected", where)
    if "prompt" in record:
        prompt = _as_messages(record["prompt"], "user", "prompt", where)
    else:
        shared = _split_implicit_prompt(chosen, rejected)
        if shared == 0:
            raise AssistantError(
                f"{where}: no `prompt`; a preference line needs `prompt`, `chosen` and `rejected` (and `images`)"
            )
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if not any(message.get("role") == "user" for message in prompt):
        raise AssistantError(f"{where}: the `prompt` has no user message")
    answers = []
    for name, messages in (("chosen", chosen), ("rejected", rejected)):
        if len(messages) != 1 or messages[0].get("role") != "assistant":
            raise AssistantError(f"{where}: `{name}` must be one assistant reply (a string or one assistant message)")
        answers.append(messages[0])
    return prompt, answers[0], answers[1]


def preference_chat_record(record: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(a TRL conversational record: prompt + chosen, with the images; the rejected reply in TRL message form)."""
    prompt, chosen, rejected = parse_preference(record, where)
    chat: dict[str, Any] = {"messages": prompt + [chosen]}
    for key in ("images", "image"):
        if key in record:
            chat[key] = record[key]
    return chat, rejected


def rejected_entry(rejected: dict[str, Any], where: str) -> dict[str, Any]:
    """A TRL rejected message as a `rejected_siblings` entry."""
    from .formats import _tool_calls, _trl_items

    items = _trl_items(rejected.get("content"), False, where)
    if any(kind == "image" for kind, _ in items):
        raise AssistantError(f"{where}: the `rejected` reply holds an image; images belong in the prompt")
    text = "".join(str(value) for kind, value in items if kind == "text")
    calls = [value for _, value in _tool_calls(rejected, where)]
    if not text.strip() and not calls:
        raise AssistantError(f"{where}: the `rejected` reply is empty")
    entry: dict[str, Any] = {"text": text}
    if calls:
        entry["tool_calls"] = calls
    return entry


def mark_preferred(messages: list[Message], entry: dict[str, Any], where: str) -> None:
    """Make the last message of an imported preference line the rated-up reply that beat `entry`."""
    reply = messages[-1] if messages else None
    if reply is None or reply.role != "assistant" or not _has_content(reply):
        raise AssistantError(f"{where}: the `chosen` reply is empty")
    reply.rating = 1
    meta = reply.meta or ReplyMeta()
    meta.extra = {**meta.extra, REJECTED_KEY: [entry]}
    reply.meta = meta


def pairs_from_file(path: Path) -> PairSet:
    """The pairs of a TRL preference .jsonl (training with `--data`, or the eval helper), images read from files."""
    from .formats import library_sink, read_file, to_messages

    path = Path(path).expanduser()
    library = ImageLibrary()
    sink = library_sink(library, path.parent)
    pairs: list[PreferencePair] = []
    chats = [chat for chat in read_file(path, "auto") if chat.rejected is not None]  # other lines: SFT data
    for chat in chats:
        conversation = Conversation(messages=to_messages(chat, sink))  # the chosen reply rated up over `rejected`
        for pair in conversation_pairs(conversation):
            pair.source = chat.where
            pair.examples[0].source = pair.examples[1].source = chat.where
            pairs.append(pair)
    if not pairs:
        raise AssistantError(
            f"{path} holds no preference pairs; a preference line has `prompt`, `chosen` and `rejected` (TRL's "
            "preference format), or train on it without --method dpo"
        )
    return PairSet(pairs, library, len(chats), DataSelection(data_file=str(path), data_format="trl-preference"))


def _trl_reply(message: Message) -> dict[str, Any]:
    record: dict[str, Any] = {"role": "assistant", "content": [{"type": "text", "text": message.text}]}
    if message.tool_calls:
        record["tool_calls"] = [{"type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                                for call in message.tool_calls]
    return record


def pair_to_trl(pair: PreferencePair, image_name: Any) -> dict[str, Any]:
    """A pair as a TRL conversational preference record (images as file names from `image_name(part)`)."""
    from .formats import example_to_trl

    prompt = example_to_trl(Example(pair.prompt, [], pair.source), image_name)
    record: dict[str, Any] = {
        "prompt": prompt["messages"],
        "chosen": [_trl_reply(pair.chosen)],
        "rejected": [_trl_reply(pair.rejected)],
    }
    if prompt.get("images"):
        record["images"] = prompt["images"]
    return record


def split_pairs(pairs: Sequence[PreferencePair], fraction: float, seed: int) -> tuple[list[PreferencePair], list[PreferencePair]]:
    """(train, held out): `fraction` of the chats held out, a chat's pairs kept together (as split_examples)."""
    from .dataset import split_examples

    proxies = [pair.examples[0] for pair in pairs]
    train, held = split_examples(proxies, fraction, seed)
    kept = {id(example) for example in train}
    return ([pair for pair in pairs if id(pair.examples[0]) in kept],
            [pair for pair in pairs if id(pair.examples[0]) not in kept])


def describe_pairs(pairs: Sequence[PreferencePair]) -> str:
    chats = len({pair.conversation_id if pair.conversation_id is not None else pair.source for pair in pairs})
    images = sum(len(pair.images) for pair in pairs)
    return (f"{len(pairs)} preference pair{'s' if len(pairs) != 1 else ''} from {chats} "
            f"chat{'s' if chats != 1 else ''}, {images} image{'s' if images != 1 else ''}")
