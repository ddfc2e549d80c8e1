"""Train with the CLI, then use the adapter with `ask --adapter`: what a fresh install must be able to do."""

from __future__ import annotations

import pytest

from assistant.cli import main
from assistant.store import Store
from tests.plugins.test_finetune_support import colour_chats


@pytest.mark.slow
def test_train_then_ask_with_the_adapter(capsys: pytest.CaptureFixture[str]) -> None:
    with Store.open_default() as store:
        colour_chats(store, 4)
    small = ["--profile", "tiny-smolvlm", "--epochs", "1", "--batch-size", "2", "--grad-accum", "1", "--lr", "1e-3"]
    assert main(["train", "--name", "fresh", *small]) == 0
    capsys.readouterr()
    assert main(["ask", "--profile", "tiny-smolvlm", "--adapter", "fresh", "--max-tokens", "3", "What colour?"]) == 0
    out, err = capsys.readouterr()
    assert "error" not in err.lower()
    with Store.open_default() as store:
        chat = store.list_conversations()[0]
        reply = store.get_conversation(chat.id).messages[-1]
    assert reply.role == "assistant" and reply.status == "ok" and reply.meta.adapter == "fresh"
