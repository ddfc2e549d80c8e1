"""Built-in plugin: fine-tuning. LoRA adapters trained from saved chats (CLI commands, the /train command, the
`lora` trainer)."""

from __future__ import annotations

from typing import Any, Callable

from assistant import hookimpl
from assistant.hooktypes import SlashCommand, Trainer


@hookimpl
def register_commands(cli: Any) -> None:
    from .commands import register

    register(cli)


@hookimpl
def register_slash_commands(register: Callable[[SlashCommand], None]) -> None:
    from .slash import run_train

    register(
        SlashCommand(
            name="train",
            help="Train a LoRA adapter in the background: /train --name NAME [--tag T|--chats IDS|--rated] "
            "[--epochs N] [--method sft|dpo|sft-then-dpo] (options of `assistant train`); /train status; "
            "/train stop [NAME]",
            run=run_train,
        )
    )


def _train(config: Any, progress: Any = None, **options: Any) -> Any:
    from .trainer import train_adapter

    return train_adapter(config, progress=progress, **options)


@hookimpl
def register_trainers(register: Callable[[Trainer], None]) -> None:
    register(
        Trainer(
            name="lora",
            description="peft LoRA on the language model (QLoRA with --4bit on CUDA); loss on assistant replies only",
            train=_train,
        )
    )
