"""The configurable term list: one `category<TAB>term` a line, `#` starts a comment line."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_TERMS_PATH = Path(__file__).parent / "terms" / "default.tsv"


@dataclass(frozen=True, slots=True)
class Term:
    category: str
    text: str  # as written in the list; the matcher normalises it


def read_terms(path: Path) -> list[Term]:
    """The terms of one file; a malformed line is a configuration error naming the file and line."""
    terms = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        category, tab, text = line.partition("\t")
        if not tab or not category.strip() or not text.strip():
            raise ValueError(f"{path}:{number}: expected `category<TAB>term`, got {line!r}")
        terms.append(Term(category.strip(), text.strip()))
    return terms
