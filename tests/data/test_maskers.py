"""Masking strategies: rates, the corruption split, whole units, spans, reproducibility, config checks.

Statistical checks use fixed seeds and tolerances of 5 binomial standard errors (or an exact bound where
the quantity is not random), so they fail on a real bias, not on bad luck.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from bertology.data.maskers import (
    IGNORE_INDEX,
    MASKERS,
    EntityMasker,
    Masker,
    MaskingConfig,
    SpanMasker,
    TokenMasker,
    build_masker,
    word_units,
)
from bertology.errors import ConfigError
from bertology.tokenization import Tokenizer

V = 1000
PAD, UNK, CLS, SEP, MASK = 0, 1, 2, 3, 4
EXTRA_SPECIAL = {5, 6, 7, 8, 9}  # e.g. [unused] tokens: never in the text, never a random draw
SPECIAL = {PAD, UNK, CLS, SEP, MASK} | EXTRA_SPECIAL
STARTS = (10, 500)  # ids of word-initial pieces
CONTINUATIONS = (500, V)  # ids of "##" pieces
# the built-in strategies: a test module that registers its own (tests/extensions) may be imported first
STRATEGIES = sorted(n for n in MASKERS if MASKERS[n].__module__.startswith("bertology."))
SIGMAS = 5


def random_word(rng: np.random.Generator, max_pieces: int = 3) -> list[int]:
    n = int(rng.integers(1, max_pieces + 1))
    return [int(rng.integers(*STARTS))] + [int(x) for x in rng.integers(*CONTINUATIONS, size=n - 1)]


def make_lexicon(rng: np.random.Generator, n: int = 40) -> list[list[list[int]]]:
    """Phrases of 2-3 words (1-2 pieces each), as lists of words."""
    return [[random_word(rng, 2) for _ in range(int(rng.integers(2, 4)))] for _ in range(n)]


LEXICON_WORDS = make_lexicon(np.random.default_rng(7))
LEXICON = [[i for word in phrase for i in word] for phrase in LEXICON_WORDS]


def make_sequence(rng: np.random.Generator, length: int = 128, phrase_prob: float = 0.15) -> dict:
    """[CLS] a [SEP] b [SEP] [PAD]...: words of 1-3 pieces, with lexicon phrases planted now and then."""
    n_pad = int(rng.integers(0, 16))
    content = length - 3 - n_pad
    first = int(rng.integers(content // 4, 3 * content // 4 + 1))
    tokens, starts, words, planted = [CLS], [True], [], []
    for seg_len in (first, content - first):
        end = len(tokens) + seg_len
        while len(tokens) < end:
            plant = rng.random() < phrase_prob
            phrase = LEXICON_WORDS[int(rng.integers(len(LEXICON_WORDS)))] if plant else None
            if phrase is not None and len(tokens) + sum(map(len, phrase)) <= end:
                planted.append((len(tokens), len(tokens) + sum(map(len, phrase))))
                chosen = phrase
            else:
                chosen = [random_word(rng)[: end - len(tokens)]]
            for word in chosen:
                words.append((len(tokens), len(tokens) + len(word)))
                tokens += word
                starts += [True] + [False] * (len(word) - 1)
        tokens.append(SEP)
        starts.append(True)
    tokens += [PAD] * n_pad
    starts += [True] * n_pad
    tokens_arr = np.array(tokens, dtype=np.int64)
    return {
        "tokens": tokens_arr,
        "maskable": ~np.isin(tokens_arr, list(SPECIAL)),
        "word_starts": np.array(starts),
        "words": words,
        "planted": planted,
    }


@pytest.fixture(scope="module")
def corpus() -> list[dict]:
    rng = np.random.default_rng(2024)
    return [make_sequence(rng) for _ in range(2000)]


def make(strategy: str = "token", **fields) -> Masker:
    config = MaskingConfig(strategy=strategy, **fields)
    return MASKERS[strategy](config, MASK, UNK, V, SPECIAL, LEXICON)


def run(masker: Masker, seq: dict, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    return masker(seq["tokens"], seq["maskable"], seq["word_starts"], rng)


def within(observed: float, p: float, n: int, what: str) -> None:
    sigma = math.sqrt(p * (1 - p) / n)
    assert abs(observed - p) <= SIGMAS * sigma + 1e-12, f"{what}: {observed:.4f} vs {p:.4f} (n={n})"


# ---------------------------------------------------------------------------------------------- rates


@pytest.mark.parametrize("rate", [0.15, 0.4])
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_share_of_predicted_tokens_is_the_rate(corpus, strategy, rate):
    masker = make(strategy, rate=rate)
    rng = np.random.default_rng(1)
    predicted = maskable = 0
    for seq in corpus:
        corrupted, labels = run(masker, seq, rng)
        chosen = labels != IGNORE_INDEX
        n = masker.budget(int(seq["maskable"].sum()))
        assert chosen.sum() <= n  # the budget is never exceeded, even by a unit or span
        if strategy == "token":
            assert chosen.sum() == n
        assert (labels[chosen] == seq["tokens"][chosen]).all()
        assert (corrupted[~chosen] == seq["tokens"][~chosen]).all()
        predicted += int(chosen.sum())
        maskable += int(seq["maskable"].sum())
    # Not random: only rounding to whole tokens and units that do not fit move the share off the rate.
    assert abs(predicted / maskable - rate) < 0.01, predicted / maskable


def test_budget_rounds_with_at_least_one_and_a_cap():
    masker = make(rate=0.15)
    assert [masker.budget(n) for n in (0, 1, 3, 10, 126)] == [0, 1, 1, 2, 19]
    assert make(rate=0.15, max_predictions=5).budget(126) == 5
    assert make(rate=1.0).budget(7) == 7


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_max_predictions_caps_the_count(corpus, strategy):
    masker = make(strategy, rate=0.4, max_predictions=20)
    rng = np.random.default_rng(3)
    counts = [int((run(masker, seq, rng)[1] != IGNORE_INDEX).sum()) for seq in corpus[:300]]
    assert max(counts) == 20
    assert np.mean(counts) > 19  # units that do not fit leave at most a token or two unused


def test_no_maskable_token_means_no_prediction():
    tokens = np.array([CLS, SEP, PAD, PAD])
    for strategy in STRATEGIES:
        masker = make(strategy)
        corrupted, labels = masker(tokens, np.zeros(4, bool), np.ones(4, bool), np.random.default_rng(0))
        assert (labels == IGNORE_INDEX).all() and (corrupted == tokens).all()


# ------------------------------------------------------------------------------------------ corruption


@pytest.mark.parametrize("mask_prob,random_prob", [(0.8, 0.1), (1.0, 0.0), (0.5, 0.25)])
def test_corruption_split(corpus, mask_prob, random_prob):
    masker = make(rate=0.4, mask_prob=mask_prob, random_prob=random_prob)
    rng = np.random.default_rng(5)
    replaced = randomised = unchanged = total = 0
    for seq in corpus:
        corrupted, labels = run(masker, seq, rng)
        chosen = labels != IGNORE_INDEX
        new, old = corrupted[chosen], labels[chosen]
        replaced += int((new == MASK).sum())
        unchanged += int((new == old).sum())
        others = new[(new != MASK) & (new != old)]
        randomised += others.size
        assert not np.isin(others, list(SPECIAL)).any()  # random draws are never special
        assert (others >= 0).all() and (others < V).all()
    total = replaced + unchanged + randomised
    pool = V - len(SPECIAL)  # a random draw hits the original id with probability 1/pool
    within(replaced / total, mask_prob, total, "replacement")
    within(randomised / total, random_prob * (1 - 1 / pool), total, "random")
    within(unchanged / total, 1 - mask_prob - random_prob + random_prob / pool, total, "unchanged")
    if random_prob == 0:
        assert randomised == 0 and unchanged == 0


def test_random_draws_cover_the_ordinary_vocabulary_only(corpus):
    masker = make(rate=0.4, mask_prob=0.0, random_prob=1.0)
    rng = np.random.default_rng(6)
    drawn = np.concatenate([run(masker, seq, rng)[0][seq["maskable"]] for seq in corpus[:500]])
    seen = set(np.unique(drawn).tolist())
    assert not seen & SPECIAL
    assert len(seen) > 0.95 * (V - len(SPECIAL))  # uniform over all ordinary ids, not just those in the text


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_unk_replacement_uses_unk_never_mask(corpus, strategy):
    masker = make(strategy, replacement="unk", rate=0.4)
    rng = np.random.default_rng(8)
    replaced = total = 0
    for seq in corpus[:500]:
        corrupted, labels = run(masker, seq, rng)
        assert not (corrupted == MASK).any()
        chosen = labels != IGNORE_INDEX
        replaced += int((corrupted[chosen] == UNK).sum())
        total += int(chosen.sum())
    within(replaced / total, 0.8, total, "[UNK] share")


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_special_and_padding_positions_are_never_selected(corpus, strategy):
    masker = make(strategy, rate=1.0, mask_prob=0.0, random_prob=1.0)
    rng = np.random.default_rng(9)
    for seq in corpus[:300]:
        # The caller's flags claim everything is maskable: special ids must still be left alone.
        corrupted, labels = masker(seq["tokens"], np.ones(seq["tokens"].size, bool), seq["word_starts"], rng)
        special = np.isin(seq["tokens"], list(SPECIAL))
        assert (labels[special] == IGNORE_INDEX).all()
        assert (corrupted[special] == seq["tokens"][special]).all()
        assert (labels[~special] != IGNORE_INDEX).all()  # rate 1: every ordinary token
        assert not np.isin(corrupted[~special], list(SPECIAL)).any()


# --------------------------------------------------------------------------------------- whole units


def test_whole_words_are_predicted_whole(corpus):
    masker = make("whole_word", rate=0.4)
    rng = np.random.default_rng(10)
    partial_multi_piece = 0
    for seq in corpus[:500]:
        chosen = run(masker, seq, rng)[1] != IGNORE_INDEX
        for start, stop in seq["words"]:
            assert chosen[start:stop].all() or not chosen[start:stop].any()
            partial_multi_piece += stop - start > 1 and chosen[start]
    assert partial_multi_piece > 1000  # multi-piece words do get chosen


def test_entities_are_predicted_whole(corpus):
    masker = make("entity", rate=0.4)
    assert isinstance(masker, EntityMasker)
    rng = np.random.default_rng(11)
    found = planted = chosen_entities = 0
    for seq in corpus[:500]:
        chosen = run(masker, seq, rng)[1] != IGNORE_INDEX
        occurrences = masker.occurrences(seq["tokens"], seq["maskable"], seq["word_starts"])
        for start, stop in occurrences:
            assert chosen[start:stop].all() or not chosen[start:stop].any()
            chosen_entities += bool(chosen[start])
        for start, stop in seq["words"]:  # and plain words stay whole too
            assert chosen[start:stop].all() or not chosen[start:stop].any()
        found += len(set(occurrences) & set(seq["planted"]))
        planted += len(seq["planted"])
    assert found > 0.95 * planted  # planted phrases are found (a rare overlap may shadow one)
    assert chosen_entities > 0.2 * found


def test_occurrences_are_leftmost_longest_whole_words_within_segments():
    config = MaskingConfig(strategy="entity")
    a, b, c, d, cont = 10, 11, 12, 13, 600
    lexicon = [[a, b], [a, b, c], [b, c, d], [c], [d, cont], [UNK]]
    masker = EntityMasker(config, MASK, UNK, V, SPECIAL, lexicon)
    tokens = np.array([CLS, a, b, c, d, a, b, SEP, c, d, cont, d, SEP, a, b, cont, PAD])
    starts = np.array([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 0, 0, 1], bool)
    # [a b c] beats [a b] (longest) and shadows the overlapping [b c d]; [a b] before [SEP] still matches;
    # [d] alone is no phrase; [d cont] matches; [a b] at 13 would take part of the word "a ##b ##cont",
    # so it does not match.
    maskable = ~np.isin(tokens, list(SPECIAL))
    assert masker.occurrences(tokens, maskable, starts) == [(1, 4), (5, 7), (8, 9), (9, 11)]
    # a phrase never crosses a special token
    tokens2 = np.array([CLS, a, SEP, b, SEP])
    assert masker.occurrences(tokens2, ~np.isin(tokens2, list(SPECIAL)), np.ones(5, bool)) == []


def test_entity_masking_without_lexicon_matches_is_whole_word_masking(corpus):
    config = MaskingConfig(strategy="entity")
    masker = EntityMasker(config, MASK, UNK, V, SPECIAL, [[], [UNK, 10]])  # nothing that can match
    whole_word = make("whole_word")
    for i, seq in enumerate(corpus[:50]):
        assert masker.occurrences(seq["tokens"], seq["maskable"], seq["word_starts"]) == []
        ours = run(masker, seq, masker.rng_for(0, 0, i))
        theirs = run(whole_word, seq, whole_word.rng_for(0, 0, i))
        assert all((x == y).all() for x, y in zip(ours, theirs, strict=True))


def test_entity_masker_needs_a_lexicon():
    with pytest.raises(ConfigError, match="'lexicon'"):
        EntityMasker(MaskingConfig(strategy="entity"), MASK, UNK, V, SPECIAL, None)


# ----------------------------------------------------------------------------------------------- spans


def truncated_geometric_moments(p: float, cap: int) -> tuple[float, float]:
    """Mean and variance of Geometric(p) on {1, 2, ...} truncated at cap and renormalised, by hand:
    P(L = k) = p (1 - p)^(k - 1) / (1 - (1 - p)^cap) for k = 1..cap."""
    q = 1 - p
    z = 1 - q**cap
    mean = sum(k * p * q ** (k - 1) for k in range(1, cap + 1)) / z
    second = sum(k * k * p * q ** (k - 1) for k in range(1, cap + 1)) / z
    return mean, second - mean**2


@pytest.mark.parametrize("span_p,span_max", [(0.2, 10), (0.5, 3)])
def test_span_lengths_follow_the_truncated_geometric(corpus, span_p, span_max):
    masker = make("span", rate=0.4, span_p=span_p, span_max=span_max)
    assert isinstance(masker, SpanMasker)
    rng = np.random.default_rng(12)
    sampled, covered_full = [], []
    for seq in corpus:
        tokens, maskable, starts = seq["tokens"], seq["maskable"], seq["word_starts"]
        chosen, spans = masker.select_spans(tokens, maskable, starts, rng)
        word_of_start = {s: i for i, (s, _) in enumerate(seq["words"])}
        word_of_stop = {e: i for i, (_, e) in enumerate(seq["words"])}
        for span in spans:
            # whole words, inside one segment, all predicted, never longer than drawn
            first, last = word_of_start[span.start], word_of_stop[span.stop]
            assert last - first + 1 == span.words <= span.sampled
            assert maskable[span.start:span.stop].all() and chosen[span.start:span.stop].all()
            at_segment_end = not maskable[span.stop]
            if not span.trimmed and not at_segment_end:
                assert span.words == span.sampled  # only the budget or a special token shortens a span
            sampled.append(span.sampled)
            if not span.trimmed and not at_segment_end:
                covered_full.append(span.words)
        for start, stop in seq["words"]:
            assert chosen[start:stop].all() or not chosen[start:stop].any()
    mean, var = truncated_geometric_moments(span_p, span_max)
    q = 1 - span_p
    assert mean == pytest.approx(1 / span_p - span_max * q**span_max / (1 - q**span_max))  # the closed form
    if (span_p, span_max) == (0.2, 10):
        assert mean == pytest.approx(3.797, abs=1e-3)  # the paper's 3.8 (clipping would give 4.46)
    n = len(sampled)
    assert abs(np.mean(sampled) - mean) <= SIGMAS * math.sqrt(var / n), (np.mean(sampled), mean, n)
    assert np.min(sampled) == 1 and np.max(sampled) == span_max
    within(np.mean(np.array(sampled) == 1), span_p / (1 - q**span_max), n, "P(L = 1)")
    within(np.mean(np.array(sampled) == span_max), span_p * q ** (span_max - 1) / (1 - q**span_max), n,
           "P(L = span_max)")
    assert covered_full  # spans that ran to their length exist and had exactly that length


def test_span_predictions_are_contiguous_runs_of_whole_words(corpus):
    masker = make("span", rate=0.15)
    rng = np.random.default_rng(13)
    runs = []
    for seq in corpus[:500]:
        chosen = run(masker, seq, rng)[1] != IGNORE_INDEX
        edges = np.flatnonzero(np.diff(np.concatenate(([0], chosen.astype(int), [0]))))
        for start, stop in zip(edges[::2], edges[1::2], strict=True):
            assert seq["word_starts"][start] and (stop == chosen.size or seq["word_starts"][stop])
            runs.append(int(seq["word_starts"][start:stop].sum()))
    assert np.mean(runs) > 2  # runs of several words, unlike token or whole-word masking


# -------------------------------------------------------------------------------------- reproducibility


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_same_seed_epoch_index_same_result(corpus, strategy):
    masker = make(strategy)
    seq = corpus[0]
    first = run(masker, seq, masker.rng_for(42, 3, 17))
    again = run(make(strategy), seq, make(strategy).rng_for(42, 3, 17))
    assert all((x == y).all() for x, y in zip(first, again, strict=True))
    other = run(masker, seq, masker.rng_for(42, 3, 18))
    assert not (other[1] == first[1]).all()


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_dynamic_masks_change_every_epoch(corpus, strategy):
    masker = make(strategy)
    seq = corpus[1]
    masks = {tuple(run(masker, seq, masker.rng_for(0, e, 5))[1].tolist()) for e in range(20)}
    assert len(masks) == 20


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_static_masks_repeat_with_period_k(corpus, strategy):
    k = 4
    masker = make(strategy, mode="static", static_copies=k)
    seq = corpus[2]
    results = [run(masker, seq, masker.rng_for(0, e, 5)) for e in range(2 * k)]
    for e in range(k):
        assert all((x == y).all() for x, y in zip(results[e], results[e + k], strict=True))
    assert len({tuple(r[1].tolist()) for r in results}) == k


# ------------------------------------------------------------------------------------------ configuration


@pytest.mark.parametrize(
    "field,value",
    [
        ("strategy", "bogus"), ("rate", 0.0), ("rate", 1.5), ("mask_prob", -0.1), ("random_prob", 1.2),
        ("replacement", "pad"), ("max_predictions", 0), ("span_p", 0.0), ("span_max", 0),
        ("lexicon", ""), ("mode", "sometimes"), ("static_copies", 0), ("rate", "high"), ("span_max", 2.5),
    ],
)
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ConfigError, match=f"'{field}'"):
        MaskingConfig(**{field: value})
    with pytest.raises(ConfigError, match=f"'{field}'"):
        MaskingConfig.from_dict({field: value})


def test_config_probabilities_must_leave_room():
    with pytest.raises(ConfigError, match="'mask_prob' \\+ 'random_prob'"):
        MaskingConfig(mask_prob=0.9, random_prob=0.2)
    MaskingConfig(mask_prob=0.9, random_prob=0.1)  # exactly 1 is fine


def test_config_round_trip_and_unknown_fields():
    config = MaskingConfig.from_dict({"strategy": "span", "rate": 0.2, "max_predictions": 20})
    assert MaskingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown field"):
        MaskingConfig.from_dict({"ratio": 0.2})


def test_a_new_strategy_is_one_decorated_class(corpus):
    @MASKERS.register("first")
    class FirstTokens(Masker):
        def select(self, tokens, maskable, word_starts, rng):
            picked = np.flatnonzero(maskable)[: self.budget(int(maskable.sum()))]
            return np.isin(np.arange(tokens.size), picked)

    try:
        masker = MASKERS["first"](MaskingConfig(strategy="first"), MASK, UNK, V, SPECIAL)
        labels = run(masker, corpus[0], np.random.default_rng(0))[1]
        assert (labels != IGNORE_INDEX).sum() == masker.budget(int(corpus[0]["maskable"].sum()))
        assert masker.options is None
    finally:
        MASKERS.remove("first")
    with pytest.raises(ConfigError, match="'strategy'"):
        MaskingConfig(strategy="first")


@dataclasses.dataclass
class EveryKthOptions:
    k: int = 2

    def validate(self, where=""):
        if self.k < 1:
            raise ConfigError(f"{where}field 'k' must be >= 1, got {self.k}")


def test_a_strategy_declares_its_own_options(corpus):
    @MASKERS.register("every_kth", options=EveryKthOptions)
    class EveryKth(Masker):
        def select(self, tokens, maskable, word_starts, rng):
            picked = np.flatnonzero(maskable)[:: self.options.k][: self.budget(int(maskable.sum()))]
            return np.isin(np.arange(tokens.size), picked)

    try:
        config = MaskingConfig.from_dict({"strategy": "every_kth", "options": {"k": 3}}, "run.yaml: masking: ")
        masker = build_masker(config, _Vocab())
        assert masker.options == EveryKthOptions(k=3)
        labels = run(masker, corpus[0], np.random.default_rng(0))[1]
        assert (labels != IGNORE_INDEX).sum() == masker.budget(int(corpus[0]["maskable"].sum()))
        with pytest.raises(ConfigError, match=r"masking: options: unknown field 'kk'; did you mean 'k'\?"):
            MaskingConfig.from_dict({"strategy": "every_kth", "options": {"kk": 3}}, "masking: ")
        with pytest.raises(ConfigError, match="options: field 'k' must be >= 1"):
            MaskingConfig(strategy="every_kth", options={"k": 0})
    finally:
        MASKERS.remove("every_kth")
    with pytest.raises(ConfigError, match="takes no options"):  # the built-in strategies read the fields
        MaskingConfig(strategy="span", options={"k": 3})


class _Vocab:
    """The few tokenizer attributes build_masker reads."""

    mask_token_id, unk_token_id, vocab_size, special_token_ids = MASK, UNK, V, SPECIAL


def test_a_misspelt_strategy_gets_a_suggestion():
    with pytest.raises(ConfigError, match="did you mean 'whole_word'"):
        MaskingConfig(strategy="whole_wrd")


def test_inputs_are_checked():
    masker = make()
    with pytest.raises(ValueError, match="maskable"):
        masker(np.arange(10, 20), np.ones(9, bool), np.ones(10, bool), np.random.default_rng(0))
    with pytest.raises(ValueError, match="tokens"):
        masker(np.ones((2, 5), int), np.ones((2, 5), bool), np.ones((2, 5), bool), np.random.default_rng(0))


# -------------------------------------------------------------------------------------- from a tokenizer


@pytest.fixture()
def tokenizer(tmp_path) -> Tokenizer:
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "i", "love", "new", "york", "san", "fran",
             "##cisco", "and", "the", "city", "##s", "old"]
    (tmp_path / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    return Tokenizer.from_pretrained(tmp_path / "vocab.txt")


def test_build_masker_takes_ids_and_lexicon_from_the_tokenizer(tokenizer, tmp_path):
    lexicon = tmp_path / "entities.txt"
    lexicon.write_text("New York\n\nsan francisco\nnew york\nqwerty\n", encoding="utf-8")
    masker = build_masker(MaskingConfig(strategy="entity", lexicon=str(lexicon), rate=1.0), tokenizer)
    assert isinstance(masker, EntityMasker)
    assert (masker.mask_token_id, masker.unk_token_id, masker.vocab_size) == (4, 1, 17)
    assert masker.special_ids == frozenset(range(5))
    ids = tokenizer.convert_tokens_to_ids
    # lower-cased, repeats dropped; "qwerty" is [UNK] and so can never match
    assert masker.lexicon_ids == [ids(["new", "york"]), ids(["san", "fran", "##cisco"]), [1]]

    pieces = ["[CLS]", *tokenizer.tokenize("I love new york and san francisco, old new"), "[SEP]"]
    tokens = np.array(ids(pieces))
    starts = np.array([not p.startswith("##") for p in pieces])
    maskable = ~np.isin(tokens, list(tokenizer.special_token_ids))
    assert [pieces[s:e] for s, e in masker.occurrences(tokens, maskable, starts)] == [
        ["new", "york"], ["san", "fran", "##cisco"]
    ]
    corrupted, labels = masker(tokens, maskable, starts, masker.rng_for(0, 0, 0))
    assert (labels[maskable] == tokens[maskable]).all()  # rate 1: everything, [UNK] from the comma excluded


def test_build_masker_strategies_and_lexicon_errors(tokenizer, tmp_path):
    for strategy in ("token", "whole_word", "span"):
        assert type(build_masker(MaskingConfig(strategy=strategy), tokenizer)) is MASKERS[strategy]
    with pytest.raises(ConfigError, match="'lexicon'"):
        build_masker(MaskingConfig(strategy="entity"), tokenizer)
    with pytest.raises(ConfigError, match="'lexicon'"):
        build_masker(MaskingConfig(strategy="entity", lexicon=str(tmp_path / "missing.txt")), tokenizer)


def test_word_units_never_cross_a_special_token():
    maskable = np.array([0, 1, 1, 0, 1, 1, 1], bool)
    starts = np.array([1, 1, 0, 1, 0, 0, 1], bool)  # a continuation flag right after [SEP]
    unit_of, unit_starts, lengths = word_units(maskable, starts)
    assert unit_of.tolist() == [-1, 0, 0, -1, 1, 1, 2]
    assert unit_starts.tolist() == [1, 4, 6] and lengths.tolist() == [2, 2, 1]


def test_token_masker_is_registered_under_token():
    assert MASKERS["token"] is TokenMasker
