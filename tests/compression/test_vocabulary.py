"""Vocabulary pruning: the tokens kept, a pruned tokenizer that reads the data exactly as the full one, an
encoder whose outputs on that data do not change, the teacher-to-student id map, and the refusals."""

from __future__ import annotations

import pytest
import torch

from bertology import BertConfig, BertModel, Tokenizer
from bertology.assets import minilm_dir
from bertology.compression.vocabulary import id_map, kept_tokens, prune_encoder, prune_tokenizer, token_counts
from bertology.errors import ConfigError

TEXTS = ["The quick brown fox jumps over the lazy dog.", "A dog barks at the postman every morning!",
         "Photosynthesis converts light into chemical energy.", "the fox and the dog are friends"]


@pytest.fixture(scope="module")
def tok():
    return Tokenizer.from_pretrained(minilm_dir())


@pytest.fixture(scope="module")
def counts(tok):
    return token_counts((tok.encode(t) for t in TEXTS), tok.vocab_size)


def test_token_counts_count_every_occurrence(tok, counts):
    ids = [i for t in TEXTS for i in tok.encode(t)]
    assert int(counts.sum()) == len(ids)
    the = tok.convert_tokens_to_ids("the")
    assert int(counts[the]) == sum(i == the for i in ids) > 1


def test_kept_tokens_are_specials_characters_and_the_data(tok, counts):
    keep = kept_tokens(counts, tok)
    assert keep == sorted(set(keep))
    assert set(tok.special_token_ids) <= set(keep)
    vocab = tok.vocab
    assert {vocab["q"], vocab["##q"], vocab["7"], vocab["!"]} <= set(keep)  # spellable
    assert set(torch.nonzero(counts).flatten().tolist()) <= set(keep)
    bare = kept_tokens(counts, tok, spellable=False)
    assert set(bare) == set(tok.special_token_ids) | set(torch.nonzero(counts).flatten().tolist())
    assert len(bare) < len(keep) < 400


def test_a_size_cap_keeps_the_most_frequent_tokens(tok, counts):
    full = kept_tokens(counts, tok, spellable=False)
    specials = len(set(tok.special_token_ids))
    capped = kept_tokens(counts, tok, max_size=specials + 3, spellable=False)
    data = [i for i in capped if i not in tok.special_token_ids]
    assert len(capped) == specials + 3 and set(capped) < set(full)
    threshold = min(int(counts[i]) for i in data)
    assert all(int(counts[i]) <= threshold for i in set(full) - set(capped) - set(tok.special_token_ids))
    assert tok.convert_tokens_to_ids("the") in capped  # the most frequent word
    with pytest.raises(ConfigError, match="cannot hold the .* special and character tokens"):
        kept_tokens(counts, tok, max_size=10)


def test_the_pruned_tokenizer_reads_the_data_as_the_full_one(tok, counts):
    keep = kept_tokens(counts, tok)
    small = prune_tokenizer(tok, keep)
    assert small.vocab_size == len(keep)
    table = id_map(tok, small)
    for text in TEXTS:
        full_ids, small_ids = tok.encode(text), small.encode(text)
        assert tok.convert_ids_to_tokens(full_ids) == small.convert_ids_to_tokens(small_ids)
        assert table[torch.tensor(full_ids)].tolist() == small_ids
    # an unseen word falls back to kept pieces, not [UNK]
    unseen = small.encode("zebra")[1:-1]
    assert unseen and small.unk_token_id not in unseen
    assert "".join(small.convert_ids_to_tokens(unseen)).replace("##", "") == "zebra"
    # pruned-away ids map to the student's [UNK]
    assert int(table[tok.convert_tokens_to_ids("zebra")]) == small.unk_token_id


def test_the_pruned_tokenizer_saves_and_loads(tok, counts, tmp_path):
    small = prune_tokenizer(tok, kept_tokens(counts, tok))
    small.save_pretrained(tmp_path)
    again = Tokenizer.from_pretrained(tmp_path)
    assert again.vocab == small.vocab
    assert again.encode(TEXTS[0]) == small.encode(TEXTS[0])


def test_the_pruned_encoder_computes_the_same_on_the_data(tok, counts, tmp_path):
    torch.manual_seed(0)
    model = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2,
                                 num_attention_heads=4, intermediate_size=64)).eval()
    keep = kept_tokens(counts, tok)
    pruned = prune_encoder(model, keep).eval()
    small = prune_tokenizer(tok, keep)
    assert pruned.config.vocab_size == len(keep) and pruned.config.pad_token_id == keep.index(tok.pad_token_id)
    assert sum(p.numel() for p in pruned.parameters()) == (sum(p.numel() for p in model.parameters())
                                                          - 32 * (tok.vocab_size - len(keep)))
    full_batch, small_batch = tok(TEXTS, padding=True, return_tensors="pt"), small(TEXTS, padding=True,
                                                                                   return_tensors="pt")
    with torch.no_grad():
        a = model(full_batch["input_ids"], full_batch["attention_mask"]).last_hidden_state
        b = pruned(small_batch["input_ids"], small_batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(a, b)
    pruned.save_pretrained(tmp_path)
    again = BertModel.from_pretrained(tmp_path)
    assert again.embeddings.word.weight.shape == (len(keep), 32)


def test_id_map_refuses_a_vocabulary_that_is_not_a_subset(tok, tmp_path):
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nthe\nxyzzyplugh\n", encoding="utf-8")
    other = Tokenizer.from_pretrained(tmp_path / "vocab.txt")
    with pytest.raises(ConfigError, match="1 token\\(s\\) the teacher's lacks.*xyzzyplugh"):
        id_map(tok, other)


def test_pruning_refuses_what_it_cannot_prune(tok, counts):
    from bertology.models.ambert import AmbertConfig, AmbertModel

    ambert = AmbertModel(AmbertConfig(vocab_size=40, coarse_vocab_size=30, hidden_size=16, num_hidden_layers=1,
                                      num_attention_heads=2, intermediate_size=32))
    with pytest.raises(ConfigError, match="AMBERT.*two vocabularies"):
        prune_encoder(ambert, [0, 1, 2])
    model = BertModel(BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32))
    with pytest.raises(ConfigError, match="ascending, distinct and below 50"):
        prune_encoder(model, [0, 3, 2])
    with pytest.raises(ConfigError, match="padding token"):
        prune_encoder(model, [1, 2, 3])
    with pytest.raises(ConfigError, match="WordPiece tokenizers, not"):
        prune_tokenizer(object(), [0, 1])
