"""Turn a conversation into the model's inputs: chat-template messages, images, processor tensors.

Nothing here assumes one model family: the processor's own chat template renders the prompt and the
processor's own image pipeline makes the pixel tensors; only the image-budget keywords differ by family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..conversation import ImagePart, Message, TextPart, ToolCallPart, ToolResultPart, VideoPart
from ..errors import AssistantError
from ..toolcalls import call_text, fallback_instructions, result_text
from .processed_images import reusing_processed_images
from .video_inputs import conversation_video_parts, flatten_video_frames, frame_keys, video_call

if TYPE_CHECKING:
    from PIL.Image import Image

    from .loading import LoadedModel

ImageOpener = Callable[[ImagePart], "Image"]


@dataclass
class PromptInputs:
    """Processor output plus what was put into it."""

    tensors: Any
    """transformers BatchFeature (input_ids, attention_mask, pixel_values, ...)."""
    prompt: str
    images: list["Image"] = field(default_factory=list)
    image_keys: list[str] = field(default_factory=list)
    """Content hashes of `images`, in order (the KV cache checks them before reusing work)."""
    input_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    """(width, height) each image was resized to, by content hash, for patch-grid processors (Qwen2-VL)."""

    @property
    def prompt_tokens(self) -> int:
        return int(self.tensors["input_ids"].shape[-1])


def template_messages(
    messages: Sequence[Message], system_prompt: str = "", tool_role: bool = False, native_tools: bool = False
) -> list[dict]:
    """Chat-template messages (content lists with {"type": "image"} placeholders), in conversation order.

    Failed replies are left out (the model never saw them finish); stopped ones are kept as the user saw them.
    Corrected replies are shown as corrected: the conversation continues from what the user approved.

    Tool calls and results: with `native_tools` (templates that render `tools=`, assistant `tool_calls` and a
    `tool` role themselves) they go to the template as such. Otherwise a call is the fallback JSON text of
    `assistant.toolcalls.call_text` in the assistant's turn, and a result is a user turn starting with
    "Tool result:" (a `tool` turn when `tool_role`). Text parts of a tool message (imported datasets) render
    like result parts, so a chat renders the same whether its results were stored or imported.
    """
    rendered: list[dict] = []
    if system_prompt:
        rendered.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    for message in messages:
        if message.role == "assistant" and message.status in ("failed", "streaming"):
            continue
        entry: dict[str, Any]
        if message.role == "tool":
            entry = _tool_message(message, tool_role or native_tools, native_tools)
        elif message.role == "assistant" and message.correction is not None:
            entry = {"role": "assistant", "content": [{"type": "text", "text": message.correction}]}
        else:
            entry = _message(message, native_tools)
        if entry["role"] == "system":
            rendered.insert(0, entry)
            continue
        rendered.append(entry)
    return _merge_same_role(rendered)


def _message(message: Message, native_tools: bool) -> dict[str, Any]:
    content: list[dict] = []
    calls: list[dict] = []
    for part in message.parts:
        if isinstance(part, ImagePart):
            content.append({"type": "image"})
        elif isinstance(part, VideoPart):
            content.append({"type": "video"})
        elif isinstance(part, TextPart) and part.text:
            content.append({"type": "text", "text": part.text})
        elif isinstance(part, ToolCallPart):
            if native_tools:
                calls.append({"type": "function", "function": {"name": part.name, "arguments": part.arguments}})
            else:
                joiner = "\n" if content and content[-1].get("type") == "text" else ""
                content.append({"type": "text", "text": joiner + call_text(part.name, part.arguments)})
        elif isinstance(part, ToolResultPart) and part.text:
            content.append({"type": "text", "text": part.text})
    if not content and not calls:
        content.append({"type": "text", "text": ""})  # an empty reply still renders (templates read content[0])
    entry: dict[str, Any] = {"role": message.role, "content": content}
    if calls:
        entry["tool_calls"] = calls
    return entry


def _tool_message(message: Message, tool_role: bool, native_tools: bool) -> dict[str, Any]:
    images = [{"type": "image"} for part in message.parts if isinstance(part, ImagePart)]
    texts = [part.text for part in message.parts if isinstance(part, (TextPart, ToolResultPart)) and part.text]
    text = "\n".join(texts)
    if not native_tools:
        text = result_text(text)
    content = images + ([{"type": "text", "text": text}] if text else [])
    return {"role": "tool" if tool_role else "user", "content": content}


def _merge_same_role(messages: list[dict]) -> list[dict]:
    """Adjacent messages of the same role become one (some templates require strict alternation)."""
    merged: list[dict] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"] and message["role"] != "system":
            merged[-1]["content"] = merged[-1]["content"] + message["content"]
            if message.get("tool_calls"):
                merged[-1]["tool_calls"] = merged[-1].get("tool_calls", []) + message["tool_calls"]
        else:
            merged.append(dict(message, content=list(message["content"])))
    return merged


def conversation_image_parts(messages: Sequence[Message]) -> list[ImagePart]:
    """The image parts of the conversation, in the order their placeholders appear in the prompt."""
    parts = []
    for message in messages:
        if message.role == "assistant" and (message.status in ("failed", "streaming") or message.correction is not None):
            continue
        parts.extend(part for part in message.parts if isinstance(part, ImagePart))
    return parts


def image_kwargs(loaded: "LoadedModel") -> dict[str, Any]:
    """Processor keywords that apply the profile's image settings to this model family."""
    settings = loaded.profile.image
    kwargs: dict[str, Any] = {}
    processor = getattr(loaded.processor, "image_processor", None)
    if processor is None:
        return kwargs
    if hasattr(processor, "do_image_splitting"):
        if settings.mode == "quick":
            kwargs["do_image_splitting"] = False
            tile = (getattr(processor, "max_image_size", None) or {}).get("longest_edge")
            if tile:
                kwargs["size"] = {"longest_edge": int(tile)}
        elif settings.longest_edge:
            kwargs["size"] = {"longest_edge": int(settings.longest_edge)}
    elif hasattr(processor, "patch_size") and hasattr(processor, "merge_size"):
        size = dict(getattr(processor, "size", {}) or {})
        if settings.max_pixels:
            size["longest_edge"] = int(settings.max_pixels)
        if settings.mode == "quick":
            unit = int(processor.patch_size) * int(processor.merge_size)
            size["longest_edge"] = min(size.get("longest_edge", 1 << 30), 64 * unit * unit)
        if size:
            kwargs["size"] = size
    return kwargs


def native_tool_support(processor: Any) -> bool:
    """True when the processor's chat template renders `tools=`, assistant `tool_calls` and `tool` messages itself
    (Qwen2.5-style templates); False for templates that know nothing of tools (SmolVLM, Qwen2-VL)."""
    template = getattr(processor, "chat_template", None)
    if not isinstance(template, str):
        template = getattr(getattr(processor, "tokenizer", None), "chat_template", None)
    return isinstance(template, str) and "tool_calls" in template and "tools" in template


def offered_tools(messages: Sequence[Message]) -> list[dict] | None:
    """The tool specs a saved agent chat was generated with (the agent keeps them in each reply's metadata).

    Training passes them to `render_chat` so an agent chat is learned with the tool declarations it was
    answered with; None for chats that never offered tools.
    """
    for message in messages:
        if message.role == "assistant" and message.meta is not None:
            tools = message.meta.extra.get("tools")
            if isinstance(tools, list) and tools:
                return tools
    return None


def render_chat(
    processor: Any,
    messages: Sequence[Message],
    system_prompt: str = "",
    tools: Sequence[dict] | None = None,
    add_generation_prompt: bool = True,
) -> str:
    """The prompt text of a conversation, exactly as the model gets it (training renders through here too).

    `tools` are function specs (`assistant.toolcalls.tool_spec`) the model may call: passed to the template as
    `tools=` when it supports them, else described in the system prompt in the fallback JSON format. Stored tool
    calls and results render in the same style either way, with or without `tools`.
    """
    native = native_tool_support(processor)
    kwargs: dict[str, Any] = {}
    if tools:
        if native:
            kwargs["tools"] = list(tools)
        else:
            system_prompt = "\n\n".join(text for text in (system_prompt.strip(), fallback_instructions(tools)) if text)
    chat = template_messages(messages, system_prompt, tool_role=native, native_tools=native)
    try:
        return processor.apply_chat_template(chat, add_generation_prompt=add_generation_prompt, tokenize=False, **kwargs)
    except Exception as error:  # template errors are config problems of the model, not bugs of ours
        raise AssistantError(f"the model's chat template cannot render this conversation: {error}") from None


def build_inputs(
    loaded: "LoadedModel",
    messages: Sequence[Message],
    open_image: ImageOpener,
    system_prompt: str = "",
    tools: Sequence[dict] | None = None,
    reuse_processed: bool = True,
) -> PromptInputs:
    """Render the chat template and run the processor: the exact tensors `generate` gets.

    `reuse_processed`: the image parts' `sha256` are content hashes, so processed pixels may be reused across
    calls (engine/processed_images.py); False for parts named otherwise (engine/budget.py numbers them)."""
    processor = loaded.processor
    prompt = render_chat(processor, messages, system_prompt, tools)
    parts = conversation_image_parts(messages)
    images = [open_image(part) for part in parts]
    call: dict[str, Any] = {"text": [prompt], "return_tensors": "pt"}
    if images:
        call["images"] = [images]
        call.update(image_kwargs(loaded))
    videos = conversation_video_parts(messages)
    if videos:  # engine/video_inputs.py: stored frames + their times through the model's video processor
        call.update(video_call(loaded, videos, open_image, has_images=bool(images)))
    keys = [part.sha256 for part in parts]
    # A follow-up about the same images skips their processing; names that are not content hashes must not reuse.
    with reusing_processed_images(processor, keys if reuse_processed else ()):
        tensors = flatten_video_frames(processor(**call), videos) if videos else processor(**call)
    sizes = grid_sizes(loaded, tensors.get("image_grid_thw"))
    return PromptInputs(
        tensors=tensors.to(loaded.device),
        prompt=prompt,
        images=images,
        image_keys=keys + frame_keys(videos),
        input_sizes=dict(zip(keys, sizes)),
    )


def grid_sizes(loaded: "LoadedModel", grids: Any) -> list[tuple[int, int]]:
    """(width, height) in pixels of each image's patch grid (`image_grid_thw` rows); [] for other processors."""
    processor = getattr(loaded.processor, "image_processor", None)
    if grids is None or processor is None or not hasattr(processor, "patch_size"):
        return []
    patch = int(processor.patch_size)
    return [(int(cols) * patch, int(rows) * patch) for _, rows, cols in grids.tolist()]


def model_input_size(loaded: "LoadedModel", image: "Image") -> tuple[int, int] | None:
    """(width, height) of the image as the model saw it, for processors that resize to a patch grid.

    Qwen2-VL-style processors report `image_grid_thw` in patches; times the patch size gives pixels.
    Processors that tile (Idefics3) have no single input size: None, and coordinates stay relative.
    """
    processor = getattr(loaded.processor, "image_processor", None)
    if processor is None or not hasattr(processor, "merge_size"):
        return None
    output = processor(images=[image], return_tensors="pt", **image_kwargs(loaded))
    sizes = grid_sizes(loaded, output.get("image_grid_thw"))
    return sizes[0] if sizes else None
