"""Probes for docs/finetuning.md: is a sweep task's answer in the tiny SmolVLM's frozen image features at all?

Not a test (pytest does not collect it): run it by hand on the tiny random SmolVLM:

    python tests/plugins/finetune_probe.py count-mixed --sizes 13 200 [--flips]

For each number of training images per answer it fits, on images drawn like the sweep's (test images: another
seed, 100 per answer), three readers and prints their held-out accuracy:

- `dark area`: a linear classifier on the share and the number of dark pixels (no model at all; what a reader of
  "how much dark is there" gets);
- `linear/mean`: a linear classifier on the mean of the connector's image tokens (what the language model sees);
- `token head`: a small network trained from scratch on the connector's image tokens (per-token MLP, summed,
  then linear: it can count tokens that look alike), the best a reader of the frozen features can hope for.

`--flips` adds the 8 flips and transposes of every training image (the largest answer-preserving augmentation
of a counting task).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from test_finetune_support import TASKS  # noqa: E402

HIDDEN = 64


def _images(task: Any, per_answer: int, seed: int) -> tuple[list[Any], list[int]]:
    rng = random.Random(seed)
    images, labels = [], []
    for label, answer in enumerate(task.answers):
        for _ in range(per_answer):
            images.append(task.draw(answer, rng))
            labels.append(label)
    return images, labels


def _flips(images: list[Any], labels: list[int]) -> tuple[list[Any], list[int]]:
    from PIL import Image

    out, out_labels = [], []
    for image, label in zip(images, labels):
        for flags in range(8):
            flipped = image
            if flags & 1:
                flipped = flipped.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
            if flags & 2:
                flipped = flipped.transpose(Image.Transpose.FLIP_TOP_BOTTOM)
            if flags & 4:
                flipped = flipped.transpose(Image.Transpose.TRANSPOSE)
            out.append(flipped)
            out_labels.append(label)
    return out, out_labels


class Features:
    """The frozen model's image tokens (after the connector) and the dark-pixel statistics of images."""

    def __init__(self) -> None:
        from assistant.profiles import load_profile
        from assistant_plugins.finetune.modeling import load_for_training

        loaded = load_for_training(load_profile("tiny-smolvlm"), four_bit=False)
        self.model, self.processor = loaded.model.eval(), loaded.processor

    def tokens(self, image: Any) -> Any:
        import torch

        pixels = self.processor.image_processor(images=[image], return_tensors="pt")["pixel_values"][0]
        pixels = pixels[(pixels != 0).flatten(1).any(1)]  # the real tiles, not the batch padding
        side = pixels.shape[-1] // self.model.config.vision_config.patch_size
        mask = torch.ones(pixels.shape[0], side, side, dtype=torch.bool)
        with torch.no_grad():
            hidden = self.model.model.vision_model(pixel_values=pixels, patch_attention_mask=mask).last_hidden_state
            return self.model.model.connector(hidden).reshape(-1, self.model.config.text_config.hidden_size)

    def batch(self, images: list[Any]) -> tuple[Any, Any, Any]:
        """(tokens padded to the longest image, their mask, dark-pixel features)."""
        import numpy as np
        import torch

        tokens = [self.tokens(image) for image in images]
        longest = max(item.shape[0] for item in tokens)
        padded = torch.zeros(len(tokens), longest, tokens[0].shape[1])
        mask = torch.zeros(len(tokens), longest, dtype=torch.bool)
        for row, item in enumerate(tokens):
            padded[row, : item.shape[0]] = item
            mask[row, : item.shape[0]] = True
        dark = []
        for image in images:
            grey = np.asarray(image.convert("L")) < 120
            dark.append([grey.mean(), grey.sum() / 1000])
        return padded, mask, torch.tensor(dark, dtype=torch.float32)


def _linear(train: Any, labels: Any, test: Any) -> Any:
    """A standardised, lightly regularised softmax regression (L-BFGS); predictions on `test`."""
    import torch

    mean, std = train.mean(0), train.std(0) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    layer = torch.nn.Linear(train.shape[1], int(labels.max()) + 1)
    optimizer = torch.optim.LBFGS(layer.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> Any:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(layer(train), labels) + 1e-3 * (layer.weight**2).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        return layer(test).argmax(1)


def _token_head(tokens: Any, mask: Any, labels: Any, test_tokens: Any, test_mask: Any, epochs: int) -> Any:
    import torch

    torch.manual_seed(0)
    per_token = torch.nn.Sequential(torch.nn.LayerNorm(HIDDEN), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.GELU(),
                                    torch.nn.Linear(HIDDEN, HIDDEN))
    out = torch.nn.Linear(HIDDEN, int(labels.max()) + 1)
    parameters = list(per_token.parameters()) + list(out.parameters())
    optimizer = torch.optim.AdamW(parameters, 1e-3, weight_decay=0.01)

    def forward(x: Any, m: Any) -> Any:
        return out((per_token(x) * m[..., None]).sum(1) / 10)

    for _ in range(epochs):
        order = torch.randperm(len(labels))
        for start in range(0, len(labels), 32):
            batch = order[start : start + 32]
            loss = torch.nn.functional.cross_entropy(forward(tokens[batch], mask[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with torch.no_grad():
        return forward(test_tokens, test_mask).argmax(1)


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("task", choices=sorted(TASKS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[13, 200], help="Training images per answer.")
    parser.add_argument("--flips", action="store_true", help="Train on the 8 flips/transposes of each image.")
    parser.add_argument("--epochs", type=int, default=150, help="Epochs of the token head.")
    args = parser.parse_args()
    torch.set_num_threads(1)
    task = TASKS[args.task]
    features = Features()
    test_images, test_labels = _images(task, 100, seed=2)
    test_tokens, test_mask, test_dark = features.batch(test_images)
    expected = torch.tensor(test_labels)
    for size in args.sizes:
        images, labels = _images(task, size, seed=1)
        if args.flips:
            images, labels = _flips(images, labels)
        tokens, mask, dark = features.batch(images)
        target = torch.tensor(labels)
        mean = (tokens * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        test_mean = (test_tokens * test_mask[..., None]).sum(1) / test_mask.sum(1, keepdim=True)
        results = {
            "dark area": _linear(dark, target, test_dark),
            "linear/mean": _linear(mean, target, test_mean),
            "token head": _token_head(tokens, mask, target, test_tokens, test_mask, args.epochs),
        }
        scores = " · ".join(f"{name} {float((predicted == expected).float().mean()):.2f}"
                            for name, predicted in results.items())
        print(f"{task.name}, {size} training images per answer{' x 8 flips' if args.flips else ''}: {scores}",
              flush=True)


if __name__ == "__main__":
    main()
