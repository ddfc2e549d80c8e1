"""Base model vs adapter on held-out conversations: loss on the learned replies and exact match of greedy answers.

Both sides run on one loaded base model, switching the adapter on and off (as the app does), with the engine's
own prompt building: what is measured is what `assistant ask --adapter NAME` would answer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from assistant.adapters import AdapterInfo, check_compatible, read_adapter
from assistant.errors import AssistantError

from .dataset import DataSelection, Dataset, Example, build_dataset
from .validation import greedy_answers, normalise

if TYPE_CHECKING:
    from assistant.store import Store


@dataclass
class SideMetrics:
    loss: float | None = None
    correct: int = 0
    total: int = 0

    @property
    def exact_match(self) -> float:
        return self.correct / self.total if self.total else 0.0


@dataclass
class EvalCase:
    source: str
    question: str
    expected: str
    base: str = ""
    adapter: str = ""


@dataclass
class EvalReport:
    adapter: str
    profile: str
    examples: int
    base: SideMetrics
    tuned: SideMetrics
    cases: list[EvalCase] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["base"]["exact_match"] = self.base.exact_match
        data["tuned"]["exact_match"] = self.tuned.exact_match
        return data


def _held_out_selection(info: AdapterInfo) -> tuple[DataSelection, list[str]]:
    data = info.data
    held = data.get("held_out") or {}
    saved = DataSelection.from_dict(data.get("selection") or {})
    if held.get("data_file"):  # trained with --val-data FILE: evaluate on that file
        return DataSelection(data_file=held["data_file"], data_format=held.get("data_format") or "auto"), []
    if saved.data_file and held.get("sources"):
        return DataSelection(data_file=saved.data_file, data_format=saved.data_format), list(held["sources"])
    if held.get("chats"):
        chats = [int(chat) for chat in held["chats"]]
        return DataSelection(chats=chats, rated=saved.rated, corrected=saved.corrected), []
    raise AssistantError(
        f"adapter {info.name!r} has no held-out chats (it was trained with --val-split 0 or on too few chats); "
        "pass --chats, --tag or --data to choose what to evaluate on"
    )


def _turn_question(example: Example, index: int) -> str:
    for message in reversed(example.messages[:index]):
        if message.role == "user":
            return normalise(message.text)[:80]
    return ""


def evaluate_adapter(
    name: str,
    selection: DataSelection | None = None,
    profile_name: str | None = None,
    store: "Store | None" = None,
    limit: int | None = None,
    batch_size: int = 1,
    progress: Callable[[str], None] | None = None,
) -> EvalReport:
    """Compare the base model and adapter `name` on `selection` (default: the chats held out when training)."""
    from assistant.profiles import load_profile

    say = progress or (lambda message: None)
    info = read_adapter(name)
    if not info.complete:
        raise AssistantError(f"adapter {name!r} is not finished; complete it with `assistant train --name {name} --resume`")
    profile = load_profile(profile_name or info.base.profile or None)
    check_compatible(info, profile)
    sources: list[str] = []
    if selection is None or selection == DataSelection():
        selection, sources = _held_out_selection(info)
    own_store = store is None and not selection.data_file
    if own_store:
        from assistant.store import Store

        store = Store.open_default()
    try:
        dataset = build_dataset(store, selection)  # type: ignore[arg-type]
        return _evaluate(info, profile, dataset, sources, limit, batch_size, say)
    finally:
        if own_store and store is not None:
            store.close()


def _evaluate(
    info: AdapterInfo, profile: Any, dataset: Dataset, sources: list[str], limit: int | None, batch_size: int,
    say: Callable[[str], None],
) -> EvalReport:
    from assistant.adapters import activate_adapter
    from assistant.engine.engine import Engine

    from .collate import Encoder
    from .modeling import load_for_training, mean_loss

    examples = dataset.examples
    if sources:
        wanted = set(sources)
        examples = [example for example in examples if example.source in wanted]
    if limit is not None:
        examples = examples[:limit]
    if not examples:
        raise AssistantError("no conversations to evaluate on; pass --chats, --tag or --data")
    say(f"loading {profile.model_label}")
    loaded = load_for_training(profile, four_bit=False)
    engine = Engine(loaded)
    encoder = Encoder(loaded, dataset.images.open, profile.chat.system_prompt)
    sides = {"base": SideMetrics(), "tuned": SideMetrics()}
    cases = [
        EvalCase(example.source, _turn_question(example, index), example.messages[index].training_text)
        for example in examples
        for index in example.targets
    ]
    for side in ("base", "tuned"):
        activate_adapter(engine, info.name if side == "tuned" else None)
        say(f"evaluating the {'adapter' if side == 'tuned' else 'base model'} on {len(cases)} replies")
        metrics = sides[side]
        metrics.loss = mean_loss(loaded.model, encoder, examples, batch_size)
        turns = [(example, index) for example in examples for index in example.targets]
        answers = greedy_answers(loaded, dataset.images.open, turns, profile.chat.system_prompt)
        for case, answer in zip(cases, answers):
            setattr(case, "adapter" if side == "tuned" else "base", answer)
            metrics.total += 1
            metrics.correct += normalise(answer) == normalise(case.expected)
    return EvalReport(info.name, profile.name, len(examples), sides["base"], sides["tuned"], cases)
