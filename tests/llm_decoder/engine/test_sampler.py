"""The batched sampler: each row of one step's logits gets a token chosen by that row's own parameters
(greedy, temperature, top-k, top-p, seed), whatever the other rows in the batch ask for.

Distribution checks draw many times with fixed seeds, so they are deterministic; the hand-built
distributions use powers of two, which float32 adds exactly, so the top-p boundary is tested exactly."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch

from services.llm_decoder.engine.sampler import _filtered_probs, sample
from services.messages import SamplingParams

VOCAB = 16
DRAWS = 2000

# A distribution whose cumulative masses are exact in float32, shuffled over the vocabulary so that the
# sort and the scatter back are exercised: RANKED[i] is the token of the i-th largest probability.
RANKED = (11, 3, 7, 0, 14)
RANKED_PROBS = (0.5, 0.25, 0.125, 0.0625, 0.0625)


def _ranked_logits() -> torch.Tensor:
    logits = torch.full((VOCAB,), float("-inf"))
    for token, prob in zip(RANKED, RANKED_PROBS, strict=True):
        logits[token] = math.log(prob)
    return logits


def _distinct_logits(rows: int, seed: int = 0) -> torch.Tensor:
    """Rows of well-separated logits (no ties, so 'the k largest' is well defined), each row ordered
    differently."""
    generator = torch.Generator().manual_seed(seed)
    return torch.stack([torch.randperm(VOCAB, generator=generator).float() * 0.5 for _ in range(rows)])


def _draws(logits: torch.Tensor, params: SamplingParams, draws: int = DRAWS) -> Counter[int]:
    """`draws` tokens for one row of logits, each from its own seed (one batch of identical rows)."""
    tokens = sample(
        logits.repeat(draws, 1), [params] * draws, [torch.Generator().manual_seed(seed) for seed in range(draws)]
    )
    return Counter(tokens)


def _drawn_per_row(logits: torch.Tensor, params: list[SamplingParams], repeats: int) -> list[set[int]]:
    """The tokens each row drew, over one batch holding the rows `repeats` times in turn (so seeded,
    unseeded and greedy rows stay interleaved); each seeded copy gets a seed of its own."""
    rows = len(params)
    generators = [
        torch.Generator().manual_seed(copy) if p.seed is not None else None for copy in range(repeats) for p in params
    ]
    torch.manual_seed(0)
    tokens = sample(logits.repeat(repeats, 1), params * repeats, generators)
    return [set(tokens[row::rows]) for row in range(rows)]


def _top(logits: torch.Tensor, k: int) -> set[int]:
    return set(logits.topk(k).indices.tolist())


class TestGreedy:
    def test_greedy_rows_take_their_own_argmax_in_a_mixed_batch(self) -> None:
        """Greedy rows (temperature 0, or top_k 1 at any temperature) pick their row's argmax, also when
        sampled rows (seeded and unseeded) sit between them."""
        logits = _distinct_logits(6)
        params = [
            SamplingParams(temperature=0.0),
            SamplingParams(temperature=5.0, seed=1),
            SamplingParams(temperature=3.0, top_k=1),
            SamplingParams(temperature=5.0),
            SamplingParams(temperature=0.0, top_p=0.1, top_k=4),
            SamplingParams(temperature=0.0),
        ]
        greedy = [0, 2, 4, 5]
        assert len({int(logits[row].argmax()) for row in greedy}) == len(greedy)  # the rows disagree
        torch.manual_seed(0)
        for step in range(50):
            generators = [None, torch.Generator().manual_seed(step), None, None, None, None]
            tokens = sample(logits, params, generators)
            assert [tokens[row] for row in greedy] == [int(logits[row].argmax()) for row in greedy]

    @pytest.mark.parametrize("temperature", [1e-300, 5e-324, 1e-6])
    def test_vanishing_temperature_is_greedy(self, temperature: float) -> None:
        """Below GREEDY_BELOW_TEMPERATURE a row is greedy (dividing by it would overflow to NaN), seeded
        or not."""
        logits = torch.randn(3, 64, generator=torch.Generator().manual_seed(0)) * 30
        params = [
            SamplingParams(temperature=temperature),
            SamplingParams(temperature=temperature, seed=7),
            SamplingParams(temperature=1.0, seed=1),
        ]
        tokens = sample(logits, params, [None, torch.Generator().manual_seed(7), torch.Generator().manual_seed(1)])
        assert tokens[:2] == [int(logits[0].argmax()), int(logits[1].argmax())]

    @pytest.mark.parametrize("temperature", [1e-5, 1e-3, 1e-2])
    def test_small_sampled_temperature_concentrates_on_the_argmax(self, temperature: float) -> None:
        """A temperature just above the greedy cut-off is sampled, yet with logits a step of 0.5 apart the
        runner-up is e^(-0.5/T) less likely: every draw is the argmax."""
        logits = _distinct_logits(1)[0]
        assert _draws(logits, SamplingParams(temperature=temperature), draws=300) == {int(logits.argmax()): 300}

    @pytest.mark.parametrize(("temperature", "top_p"), [(1e-5, 1.0), (2.0, 1e-9), (1e-5, 1e-9), (1.0, 5e-324)])
    def test_extreme_temperature_and_top_p_leave_only_the_argmax(self, temperature: float, top_p: float) -> None:
        """Extreme but valid values must not produce an invalid distribution (that would fail the step, and
        every sequence in the batch with it); each of these leaves the argmax alone."""
        logits = torch.randn(3, 64, generator=torch.Generator().manual_seed(0)) * 30
        torch.manual_seed(0)
        tokens = sample(logits, [SamplingParams(temperature=temperature, top_p=top_p)] * 3, [None] * 3)
        assert tokens == logits.argmax(dim=-1).tolist()


class TestTopK:
    @pytest.mark.parametrize("k", [2, 3, 5])
    def test_top_k_samples_exactly_the_k_largest(self, k: int) -> None:
        """Over many seeds, a top_k row never draws outside its k largest logits, and (at a temperature
        flat enough for each to be likely) draws every one of them."""
        logits = _distinct_logits(1)[0]
        drawn = _draws(logits, SamplingParams(temperature=4.0, top_k=k))
        assert set(drawn) == _top(logits, k)

    def test_top_k_of_the_whole_vocabulary_or_more_filters_nothing(self) -> None:
        flat = torch.zeros(VOCAB)
        assert set(_draws(flat, SamplingParams(top_k=VOCAB + 10))) == set(range(VOCAB))


class TestTopP:
    @pytest.mark.parametrize(
        ("top_p", "kept"),
        [
            pytest.param(0.3, 1, id="below-the-first-mass"),
            pytest.param(0.5, 1, id="exactly-the-first-mass"),
            pytest.param(0.5 + 1e-6, 2, id="just-over-the-first-mass"),
            pytest.param(0.75 - 1e-6, 2, id="just-under-two"),
            pytest.param(0.75, 2, id="exactly-two"),
            pytest.param(0.75 + 1e-6, 3, id="just-over-two"),
            pytest.param(0.875, 3, id="exactly-three"),
            pytest.param(0.9375, 4, id="exactly-four"),
            pytest.param(0.95, 5, id="between-four-and-all"),
            pytest.param(1.0, 5, id="disabled"),
        ],
    )
    def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(self, top_p: float, kept: int) -> None:
        """Masses 0.5, 0.25, 0.125, 0.0625, 0.0625: top_p keeps the most likely tokens up to the first whose
        cumulative mass reaches p (a set reaching p exactly is enough), and samples them in proportion."""
        drawn = _draws(_ranked_logits(), SamplingParams(top_p=top_p))
        assert set(drawn) == set(RANKED[:kept])
        mass = sum(RANKED_PROBS[:kept])
        for token, prob in zip(RANKED[:kept], RANKED_PROBS, strict=False):
            assert drawn[token] / DRAWS == pytest.approx(prob / mass, abs=0.04)

    def test_top_p_applies_after_temperature(self) -> None:
        """Temperature 2 flattens the masses to ~0.35, 0.25, 0.18, 0.12, 0.12 (square roots, renormalised):
        top_p 0.75 now needs three tokens, not two."""
        assert set(_draws(_ranked_logits(), SamplingParams(temperature=2.0, top_p=0.75))) == set(RANKED[:3])

    def test_top_p_applies_to_what_top_k_leaves(self) -> None:
        """top_k first, then top_p over the renormalised survivors (as HF and vLLM do): top_k 3 leaves 0.5,
        0.25, 0.125 of 0.875, i.e. 0.57, 0.29, 0.14, so top_p 0.8 keeps two (over the full distribution it
        would keep three); top_k 2 caps what top_p 0.9 would keep."""
        logits = _ranked_logits()
        assert set(_draws(logits, SamplingParams(top_p=0.8, top_k=3))) == set(RANKED[:2])
        assert set(_draws(logits, SamplingParams(top_p=0.9, top_k=2))) == set(RANKED[:2])

    def test_top_p_one_leaves_the_whole_distribution(self) -> None:
        """top_p == 1 disables the filter (SamplingParams): no token may be dropped, also when the float32
        running sum of a large vocabulary's probabilities reaches 1.0 before its long tail has been added.
        (Before the fix these rows lost up to ~1,500 tokens each; a batch neighbour's top_p still applies.)"""
        logits = torch.randn(4, 32_000, generator=torch.Generator().manual_seed(0)) * 3
        probs = _filtered_probs(logits, [SamplingParams(top_p=1.0)] * 3 + [SamplingParams(top_p=0.9)])
        assert bool((probs[:3] > 0).all())
        torch.testing.assert_close(probs[:3] / probs[:3].sum(-1, keepdim=True), logits[:3].softmax(-1))
        assert bool((probs[3] == 0).any())


class TestSeeds:
    def test_a_seed_gives_the_same_tokens_whatever_the_batch(self) -> None:
        """A seeded row's tokens depend on its seed and logits only: not on its place in the batch, nor on
        its neighbours' params, seeds, or how many of them there are."""
        steps = 40
        logits = torch.randn(steps, VOCAB, generator=torch.Generator().manual_seed(3)) * 2
        mine = SamplingParams(temperature=1.5, top_k=8, top_p=0.95, seed=1234)

        def run(neighbours: list[SamplingParams], place: int) -> list[int]:
            torch.manual_seed(len(neighbours))  # the unseeded neighbours draw differently in each run
            generators = [torch.Generator().manual_seed(p.seed) if p.seed is not None else None for p in neighbours]
            generator = torch.Generator().manual_seed(1234)
            params = [*neighbours[:place], mine, *neighbours[place:]]
            generators = [*generators[:place], generator, *generators[place:]]
            noise = torch.Generator().manual_seed(place)
            tokens = []
            for step in range(steps):
                batch = torch.randn(len(params), VOCAB, generator=noise) * 5
                batch[place] = logits[step]
                tokens.append(sample(batch, params, generators)[place])
            return tokens

        alone = run([], 0)
        assert len(set(alone)) > 3  # really sampled, not one token over and over
        assert run([SamplingParams(temperature=0.0), SamplingParams()], 1) == alone
        assert run([SamplingParams(seed=1234), SamplingParams(temperature=0.7, seed=99, top_k=2)], 2) == alone
        crowd = [SamplingParams(temperature=0.5 + i / 4, top_k=i % 4, seed=i if i % 2 else None) for i in range(9)]
        assert run(crowd, 5) == alone

    def test_different_seeds_give_different_tokens(self) -> None:
        logits = torch.zeros(1, VOCAB)
        runs = {
            tuple(sample(logits, [SamplingParams(seed=seed)], [generator])[0] for _ in range(20))
            for seed in range(5)
            for generator in [torch.Generator().manual_seed(seed)]
        }
        assert len(runs) == 5

    def test_unseeded_rows_follow_the_global_generator(self) -> None:
        """Unseeded rows draw from torch's global generator: the same global seed, the same tokens."""
        logits = torch.zeros(8, VOCAB)
        params = [SamplingParams()] * 8

        def run() -> list[int]:
            torch.manual_seed(5)
            return [token for _ in range(10) for token in sample(logits, params, [None] * 8)]

        first = run()
        assert first == run() and len(set(first)) > 3


class TestMixedBatch:
    def test_each_row_follows_its_own_params(self) -> None:
        """Rows with different params, seeded and unseeded interleaved, each keep to their own filter: the
        unseeded rows draw together in one call and must each be given back their own token."""
        logits = _distinct_logits(7, seed=1)
        params = [
            SamplingParams(temperature=4.0, top_k=2),
            SamplingParams(temperature=0.0),
            SamplingParams(temperature=4.0, top_k=3, seed=1),
            SamplingParams(temperature=4.0, top_k=4),
            SamplingParams(temperature=3.0, top_k=1),
            SamplingParams(temperature=4.0, top_k=5, seed=2),
            SamplingParams(temperature=4.0, top_k=6),
        ]
        allowed = [_top(logits[row], p.top_k or 1) for row, p in enumerate(params)]
        assert _drawn_per_row(logits, params, repeats=300) == allowed

    def test_a_masked_token_is_never_chosen(self) -> None:
        """The grammar mask sets disallowed logits to -inf before sampling: no row, greedy, hot or filtered,
        picks one, and top_k/top_p count only the allowed tokens."""
        logits = _distinct_logits(4, seed=2)
        allowed = {1, 4, 9}
        mask = torch.full((VOCAB,), float("-inf"))
        mask[list(allowed)] = 0.0
        logits = logits + mask
        logits[3] = torch.where(torch.arange(VOCAB) == 9, 0.0, float("-inf"))  # one allowed token only
        params = [
            SamplingParams(temperature=0.0),
            SamplingParams(temperature=50.0),
            SamplingParams(temperature=50.0, top_k=10, top_p=0.99),
            SamplingParams(temperature=50.0, top_k=5),
        ]
        drawn = _drawn_per_row(logits, params, repeats=300)
        assert drawn == [{int(logits[0].argmax())}, allowed, allowed, {9}]
