"""The demo model: synthetic visual questions, its training and its held-out evaluation."""

from services.demo.dataset import Sample, Split, balanced_heldout, samples
from services.demo.evaluation import Report, evaluate_model
from services.demo.questions import QuestionKind

__all__ = ["QuestionKind", "Report", "Sample", "Split", "balanced_heldout", "evaluate_model", "samples"]
