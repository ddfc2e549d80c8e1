"""Turn a conversation into the model's inputs: chat-template messages, images, processor tensors.

Nothing here assumes one model family: the processor's own chat template renders the prompt and the
processor's own image pipeline makes the pixel tensors; only the image-budget keywords differ by family.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ..conversation import ImagePart, Message, TextPart, ToolCallPart, ToolResultPart
from ..errors import AssistantError

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

    @property
    def prompt_tokens(self) -> int:
        return int(self.tensors["input_ids"].shape[-1])


def template_messages(messages: Sequence[Message], system_prompt: str = "", tool_role: bool = True) -> list[dict]:
    """Chat-template messages (content lists with {"type": "image"} placeholders), in conversation order.

    Failed replies are left out (the model never saw them finish); stopped ones are kept as the user saw them.
    Corrected replies are shown as corrected: the conversation continues from what the user approved.
    """
    rendered: list[dict] = []
    if system_prompt:
        rendered.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    for message in messages:
        if message.role == "assistant" and message.status in ("failed", "streaming"):
            continue
        content: list[dict] = []
        if message.role == "assistant" and message.correction is not None:
            content.append({"type": "text", "text": message.correction})
        else:
            for part in message.parts:
                if isinstance(part, ImagePart):
                    content.append({"type": "image"})
                elif isinstance(part, TextPart) and part.text:
                    content.append({"type": "text", "text": part.text})
                elif isinstance(part, ToolResultPart):
                    label = "error" if part.is_error else "result"
                    content.append({"type": "text", "text": f"[{part.name} {label}] {part.text}"})
                elif isinstance(part, ToolCallPart) and not message.text:
                    call = {"name": part.name, "arguments": part.arguments}
                    content.append({"type": "text", "text": f"<tool_call>{json.dumps(call)}</tool_call>"})
        role = message.role
        if role == "tool" and not tool_role:
            role = "user"
        if role == "system":
            rendered.insert(0, {"role": "system", "content": content})
            continue
        rendered.append({"role": role, "content": content})
    return _merge_same_role(rendered)


def _merge_same_role(messages: list[dict]) -> list[dict]:
    """Adjacent messages of the same role become one (some templates require strict alternation)."""
    merged: list[dict] = []
    for message in messages:
        if merged and merged[-1]["role"] == message["role"] and message["role"] != "system":
            merged[-1]["content"] = merged[-1]["content"] + message["content"]
        else:
            merged.append({"role": message["role"], "content": list(message["content"])})
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


def build_inputs(
    loaded: "LoadedModel",
    messages: Sequence[Message],
    open_image: ImageOpener,
    system_prompt: str = "",
) -> PromptInputs:
    """Render the chat template and run the processor: the exact tensors `generate` gets."""
    processor = loaded.processor
    chat = template_messages(messages, system_prompt)
    try:
        prompt = processor.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    except Exception as error:  # template errors are config problems of the model, not bugs of ours
        raise AssistantError(f"the model's chat template cannot render this conversation: {error}") from None
    parts = conversation_image_parts(messages)
    images = [open_image(part) for part in parts]
    call: dict[str, Any] = {"text": [prompt], "return_tensors": "pt"}
    if images:
        call["images"] = [images]
        call.update(image_kwargs(loaded))
    tensors = processor(**call)
    return PromptInputs(
        tensors=tensors.to(loaded.device), prompt=prompt, images=images, image_keys=[p.sha256 for p in parts]
    )


def model_input_size(loaded: "LoadedModel", image: "Image") -> tuple[int, int] | None:
    """(width, height) of the image as the model saw it, for processors that resize to a patch grid.

    Qwen2-VL-style processors report `image_grid_thw` in patches; times the patch size gives pixels.
    Processors that tile (Idefics3) have no single input size: None, and coordinates stay relative.
    """
    processor = getattr(loaded.processor, "image_processor", None)
    if processor is None or not hasattr(processor, "merge_size"):
        return None
    output = processor(images=[image], return_tensors="pt", **image_kwargs(loaded))
    grid = output.get("image_grid_thw")
    if grid is None:
        return None
    _, rows, cols = (int(v) for v in grid[0].tolist())
    patch = int(processor.patch_size)
    return cols * patch, rows * patch
