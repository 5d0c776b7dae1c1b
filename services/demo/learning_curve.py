"""The training record: loss and held-out accuracy per kind over steps, kept as JSON and drawn as a PNG."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: never open a window
import matplotlib.pyplot as plt

PROBE_PREFIX = "probe:"  # accuracy keys of the image probe's attributes
VARIED_PREFIX = "varied:"  # accuracy keys of the varied held-out conversations; unprefixed: the classic held-out


@dataclass
class LearningCurve:
    loss_steps: list[int] = field(default_factory=list)
    answer_loss: list[float] = field(default_factory=list)
    probe_loss: list[float] = field(default_factory=list)
    eval_steps: list[int] = field(default_factory=list)
    accuracy: dict[str, list[float]] = field(default_factory=dict)  # name -> held-out accuracy per eval

    def record_loss(self, step: int, answer_loss: float, probe_loss: float) -> None:
        self.loss_steps.append(step)
        self.answer_loss.append(answer_loss)
        self.probe_loss.append(probe_loss)

    def record_accuracy(self, step: int, accuracy: dict[str, float]) -> None:
        self.eval_steps.append(step)
        for kind, value in accuracy.items():
            self.accuracy.setdefault(kind, []).append(value)

    def accuracy_at(self, index: int) -> dict[str, float]:
        return {kind: values[index] for kind, values in self.accuracy.items()}

    def save(self, json_path: Path, png_path: Path) -> None:
        json_path.write_text(json.dumps(asdict(self)))
        figure, (losses, accuracies, varied, probe) = plt.subplots(1, 4, figsize=(21, 4))
        losses.plot(self.loss_steps, self.answer_loss, label="answer (next token)")
        losses.plot(self.loss_steps, self.probe_loss, label="image probe")
        losses.set(xlabel="step", ylabel="loss", yscale="log", title="training loss")
        losses.legend()
        for name, values in self.accuracy.items():
            axes = probe if name.startswith(PROBE_PREFIX) else varied if name.startswith(VARIED_PREFIX) else accuracies
            axes.plot(self.eval_steps, values, label=name.removeprefix(PROBE_PREFIX).removeprefix(VARIED_PREFIX))
        accuracies.set(xlabel="step", ylabel="exact match", ylim=(0, 1), title="held-out answers (teacher-forced)")
        varied.set(
            xlabel="step", ylabel="exact match", ylim=(0, 1), title="held-out varied conversations (teacher-forced)"
        )
        probe.set(xlabel="step", ylabel="accuracy", ylim=(0, 1), title="held-out image probe")
        for axes in (accuracies, varied, probe):
            axes.legend(fontsize="small")
        figure.tight_layout()
        figure.savefig(png_path, dpi=90)
        plt.close(figure)
