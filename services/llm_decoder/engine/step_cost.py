"""How long a step will take, learnt from the steps that ran: what lets the scheduler keep each step under a
time target, so that a running stream's gap between tokens stays bounded whatever the prompts cost.

A token budget alone bounds a step's tokens, not its time. A prompt chunk's attention grows with the context
before it: on a 2-core CPU host, 192 prompt tokens cost ~140 ms at the start of a prompt and ~220 ms at 2.6k
tokens into it, and a decode row at 2.6k tokens costs ~10 ms more than one at 40. A step is modelled as

    seconds = fixed + per_token * tokens + per_decode_key * decode keys + per_pair * prompt query-key pairs

(decode keys: the context each decode row reads; pairs: each prompt chunk's length times the context it
attends over), fitted by least squares to the last steps that ran. Decode-only steps and steps with prompt
chunks are kept apart, a window each, so a long run of decodes never pushes out what chunks cost: the first
chunk after a quiet spell is sized from the last burst, not guessed.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

# Column scales bring the features near 1 for the fit (a chunk's pairs run to the millions).
_SCALES = (1.0, 100.0, 10_000.0, 1_000_000.0)
_RIDGE = 1e-6  # keeps the fit defined while a column is still all zero (no chunks seen yet)


@dataclass(frozen=True)
class StepShape:
    """What a step's time depends on."""

    tokens: int = 0  # every token the step computes: decodes and prompt chunks
    decode_keys: int = 0  # the keys the decode rows attend over, summed
    pairs: int = 0  # prompt chunks' query-key pairs: length times the context up to the chunk's end, summed

    def with_decode(self, context_len: int) -> StepShape:
        return StepShape(self.tokens + 1, self.decode_keys + context_len, self.pairs)

    def with_chunk(self, start: int, length: int) -> StepShape:
        return StepShape(self.tokens + length, self.decode_keys, self.pairs + length * (start + length))

    @property
    def has_chunks(self) -> bool:
        return self.pairs > 0

    def features(self) -> tuple[float, ...]:
        values = (1.0, float(self.tokens), float(self.decode_keys), float(self.pairs))
        return tuple(value / scale for value, scale in zip(values, _SCALES, strict=True))


class StepCostModel:
    """Predicts a step's seconds from its shape once it has seen `min_observations` steps, of which at least
    one had prompt chunks; until then `predict` gives None and only the token budget bounds a step."""

    def __init__(self, window: int = 32, min_observations: int = 4) -> None:
        self.min_observations = min_observations
        self._decode_steps: deque[tuple[tuple[float, ...], float]] = deque(maxlen=window)
        self._chunk_steps: deque[tuple[tuple[float, ...], float]] = deque(maxlen=window)
        self._coefficients: tuple[float, ...] | None = None

    def observe(self, shape: StepShape, seconds: float) -> None:
        steps = self._chunk_steps if shape.has_chunks else self._decode_steps
        steps.append((shape.features(), seconds))
        if self._chunk_steps and len(self._chunk_steps) + len(self._decode_steps) >= self.min_observations:
            self._coefficients = self._fit()

    def predict(self, shape: StepShape) -> float | None:
        if self._coefficients is None:
            return None
        return sum(c * x for c, x in zip(self._coefficients, shape.features(), strict=True))

    def longest_chunk(self, shape: StepShape, start: int, most: int, target_s: float) -> int | None:
        """The most tokens, up to `most`, that a prompt chunk from position `start` may add to a step of
        `shape` for the step to be predicted within `target_s`: 0 if none fit, None while nothing is learnt."""
        if self._coefficients is None:
            return None
        fits = 0
        low, high = 1, most
        while low <= high:  # a step's predicted time only grows with its chunk's length
            middle = (low + high) // 2
            predicted = self.predict(shape.with_chunk(start, middle))
            assert predicted is not None
            if predicted <= target_s:
                fits, low = middle, middle + 1
            else:
                high = middle - 1
        return fits

    def _fit(self) -> tuple[float, ...]:
        """Ridge least squares through the normal equations, in plain Python: four unknowns, and no tensor
        read back to the host on the step's path."""
        rows = list(self._decode_steps) + list(self._chunk_steps)
        size = len(rows[0][0])
        gram = [[sum(x[i] * x[j] for x, _ in rows) for j in range(size)] for i in range(size)]
        for i in range(size):
            gram[i][i] += _RIDGE * len(rows)
        moments = [sum(x[i] * seconds for x, seconds in rows) for i in range(size)]
        # A cost is never negative: noise can make one come out so, and then longer chunks would look cheaper.
        return tuple(max(0.0, value) for value in _solve(gram, moments))


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float]:
    """Gaussian elimination with partial pivoting of a small, symmetric positive definite system."""
    size = len(rhs)
    augmented = [[*row, value] for row, value in zip(matrix, rhs, strict=True)]
    for column in range(size):
        pivot = max(range(column, size), key=lambda row: abs(augmented[row][column]))
        augmented[column], augmented[pivot] = augmented[pivot], augmented[column]
        for row in range(column + 1, size):
            factor = augmented[row][column] / augmented[column][column]
            for k in range(column, size + 1):
                augmented[row][k] -= factor * augmented[column][k]
    solution = [0.0] * size
    for row in reversed(range(size)):
        done = sum(augmented[row][k] * solution[k] for k in range(row + 1, size))
        solution[row] = (augmented[row][size] - done) / augmented[row][row]
    return solution
