"""The eval report: each model's headline score and per-category scores, the paired comparison with its
significance test, the side-by-side table, and the JSON written by `--json` and kept with the adapter."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from .base import Unit
from .metrics import mcnemar_exact, paired_bootstrap, significance_note
from .runner import SideResult


@dataclass
class SideSummary:
    label: str
    score: float | None
    """Mean unit score over the units that are not errors; None when every unit is an error."""
    scored_units: int
    error_units: int
    categories: dict[str, dict[str, Any]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "units": self.scored_units, "errors": self.error_units,
                "categories": self.categories, "seconds": round(self.seconds, 2)}


def summarize(side: SideResult) -> SideSummary:
    good = [unit for unit in side.units if unit.score is not None]
    categories: dict[str, list[float]] = {}
    for unit in good:
        if unit.category:
            categories.setdefault(unit.category, []).append(unit.score)  # type: ignore[arg-type]
    return SideSummary(
        label=side.label,
        score=sum(unit.score for unit in good) / len(good) if good else None,  # type: ignore[misc]
        scored_units=len(good),
        error_units=len(side.units) - len(good),
        categories={name: {"score": sum(values) / len(values), "units": len(values)}
                    for name, values in sorted(categories.items())},
        seconds=side.seconds,
    )


@dataclass
class Comparison:
    """Adapter minus base on the units both scored (errors on either side are left out of the pairs)."""

    pairs: int
    difference: float
    test: str
    p_value: float
    only_base: int = 0
    only_adapter: int = 0

    @property
    def note(self) -> str:
        extra = f" ({self.only_base + self.only_adapter} discordant pairs)" if self.test.startswith("McNemar") else ""
        return significance_note(self.p_value, self.test) + extra

    def to_dict(self) -> dict[str, Any]:
        return {"pairs": self.pairs, "difference": self.difference, "test": self.test, "p_value": self.p_value,
                "only_base": self.only_base, "only_adapter": self.only_adapter, "note": self.note}


def compare(base: list[Unit], tuned: list[Unit], binary: bool) -> Comparison:
    """McNemar's exact test for right/wrong units, a seeded paired bootstrap for continuous scores (ANLS)."""
    other = {unit.id: unit.score for unit in tuned}
    pairs = [(unit.score, other[unit.id]) for unit in base
             if unit.score is not None and other.get(unit.id) is not None]
    first = [float(a) for a, _ in pairs]  # type: ignore[arg-type]
    second = [float(b) for _, b in pairs]  # type: ignore[arg-type]
    difference = (sum(second) - sum(first)) / len(pairs) if pairs else 0.0
    if binary:
        only_base = sum(1 for a, b in zip(first, second) if a == 1.0 and b != 1.0)
        only_adapter = sum(1 for a, b in zip(first, second) if b == 1.0 and a != 1.0)
        return Comparison(len(pairs), difference, "McNemar exact test", mcnemar_exact(only_base, only_adapter),
                          only_base, only_adapter)
    return Comparison(len(pairs), difference, "paired bootstrap (2000 resamples)", paired_bootstrap(first, second))


@dataclass
class EvalReport:
    format: str
    file: str
    profile: str
    metric: str
    binary: bool
    sides: list[SideResult]
    limit: int | None = None
    created_at: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.summaries = [summarize(side) for side in self.sides]
        self.comparison = (compare(self.sides[0].units, self.sides[1].units, self.binary)
                           if len(self.sides) == 2 else None)

    @property
    def adapter(self) -> str | None:
        return next((side.adapter for side in self.sides if side.adapter), None)

    @property
    def items(self) -> int:
        return len(self.sides[0].scored)

    @property
    def units(self) -> int:
        return len(self.sides[0].units)

    def summary_dict(self) -> dict[str, Any]:
        """Everything but the per-item replies: what is kept with the adapter and shown by `adapters show`."""
        data: dict[str, Any] = {
            "format": self.format, "file": self.file, "profile": self.profile, "metric": self.metric,
            "adapter": self.adapter, "items": self.items, "units": self.units, "limit": self.limit,
            "created_at": self.created_at,
            "sides": {summary.label: summary.to_dict() for summary in self.summaries},
        }
        if self.comparison is not None:
            data["comparison"] = self.comparison.to_dict()
        return data

    def to_dict(self) -> dict[str, Any]:
        data = self.summary_dict()
        labels = [side.label for side in self.sides]
        rows = []
        for position, first in enumerate(self.sides[0].scored):
            row = {key: value for key, value in first.to_dict().items() if key in ("id", "unit", "category", "expected")}
            for label, side in zip(labels, self.sides):
                entry = side.scored[position].to_dict()
                row[label] = {key: entry[key] for key in ("reply", "parsed", "score", "error")}
            rows.append(row)
        data["item_results"] = rows
        return data


def fmt_score(value: float | None, binary: bool) -> str:
    if value is None:
        return "-"
    return f"{value:.1%}" if binary else f"{value:.3f}"


def fmt_difference(value: float, binary: bool) -> str:
    return f"{value * 100:+.1f} pts" if binary else f"{value:+.3f}"


def table(report: EvalReport) -> list[str]:
    """The side-by-side table (one column per model, a difference column with two), then the significance note."""
    summaries = report.summaries
    two = len(summaries) == 2
    labels = [summary.label for summary in summaries]
    width = max([len(report.metric), len("errors (not scored)"),
                 *(len(f"  {name} ({info['units']})") for name, info in summaries[0].categories.items())])
    columns = [max(9, len(label)) for label in labels]
    head = f"{'':<{width}}" + "".join(f" {label:>{column}}" for label, column in zip(labels, columns))
    unit_word = "questions" if report.format == "mmbench" else "items"
    asked = f" ({report.items} asked, every option rotation)" if report.format == "mmbench" else ""
    lines = [f"{report.format} · {report.file} · {report.units} {unit_word}{asked} · profile {report.profile}"]
    lines.append(head + ("      diff" if two else ""))

    def row(name: str, values: list[float | None]) -> str:
        text = f"{name:<{width}}" + "".join(
            f" {fmt_score(value, report.binary):>{column}}" for value, column in zip(values, columns))
        if two and values[0] is not None and values[1] is not None:
            text += f" {fmt_difference(values[1] - values[0], report.binary):>9}"
        return text

    lines.append(row(report.metric, [summary.score for summary in summaries]))
    for name in summaries[0].categories:
        values = [summary.categories.get(name, {}).get("score") for summary in summaries]
        count = summaries[0].categories[name]["units"]
        lines.append(row(f"  {name} ({count})", values))
    errors = [summary.error_units for summary in summaries]
    if any(errors):
        lines.append(f"{'errors (not scored)':<{width}}" + "".join(
            f" {value:>{column}}" for value, column in zip(errors, columns)))
    if report.comparison is not None:
        lines.append(report.comparison.note)
    return lines
