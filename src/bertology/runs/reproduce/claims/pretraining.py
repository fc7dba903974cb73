"""Claims about pretraining: that it helps, and how its masking and sentence objectives compare."""

from __future__ import annotations

from ..claim import Claim, greater, not_worse
from ..workspace import SCALE
from . import add

SENTIMENT = "Chinese review sentiment, test accuracy"
SETUP = (f"a 4-layer, 128-wide BERT pretrained {SCALE.pretrain_steps} steps (batches of {SCALE.pretrain_batch} "
         f"{SCALE.pretrain_length}-token sequences) on 4,000 lines of People's Daily and 4,000 unlabelled reviews "
         "(masked LM, whole-word masking unless the arm says otherwise), then fine-tuned on 800 reviews (3 epochs, "
         "mean pooling) and scored on 400")


add(Claim(
    name="pretraining-helps",
    statement="Pretraining on unlabelled text makes a better starting point for a downstream task than random "
              "weights.",
    paper="Devlin et al. (2019) report no random-initialisation row; Hao et al. (2019, 'Visualizing and "
          "Understanding the Effectiveness of BERT') show fine-tuning from pretrained weights ends in wider, "
          "better-generalising optima than from scratch (qualitative, no single number to compare)",
    setup=SETUP + "; against the same architecture from random weights, same recipe",
    arms=("pretrained", "random init"), metric=SENTIMENT,
    measure=lambda ws, seed: {"pretrained": ws.tuned("wwm", seed)["accuracy"],
                              "random init": ws.finetuned(ws.random_init(seed), "random", seed)["accuracy"]},
    test=lambda r: greater(r["pretrained"], r["random init"]),
    minutes=2.0, needs=("wwm",)))

add(Claim(
    name="wwm-vs-char",
    statement="Chinese whole-word masking (all characters of a word masked together) beats masking single "
              "characters.",
    paper="Cui et al. (2019, 'Pre-Training with Whole Word Masking for Chinese BERT'): BERT-wwm above BERT by "
          "small margins (around a point or less) on most of their Chinese tasks",
    setup=SETUP + "; whole-word masking (jieba words) against character masking",
    arms=("whole word", "character"), metric=SENTIMENT,
    measure=lambda ws, seed: {"whole word": ws.tuned("wwm", seed)["accuracy"],
                              "character": ws.tuned("char", seed)["accuracy"]},
    test=lambda r: greater(r["whole word"], r["character"]),
    minutes=2.0, needs=("wwm", "char")))

add(Claim(
    name="no-nsp",
    statement="Removing next-sentence prediction does not hurt (masked LM alone on full sentences is as good).",
    paper="Liu et al. (2019, RoBERTa, Table 2): SEGMENT-PAIR with NSP 84.0 MNLI-m / 92.9 SST-2 against "
          "FULL-SENTENCES without NSP 84.7 / 92.5",
    setup=SETUP + "; masked LM alone on full sentences against segment pairs with NSP",
    arms=("no NSP", "NSP"), metric=SENTIMENT,
    measure=lambda ws, seed: {"no NSP": ws.tuned("wwm", seed)["accuracy"], "NSP": ws.tuned("nsp", seed)["accuracy"]},
    test=lambda r: not_worse(r["no NSP"], r["NSP"], margin=0.01),
    minutes=2.0, needs=("wwm", "nsp")))

add(Claim(
    name="sop-vs-nsp",
    statement="Sentence-order prediction is a better second objective than next-sentence prediction.",
    paper="Lan et al. (2020, ALBERT): SOP raises the downstream average over NSP; an NSP-trained model solves "
          "SOP at chance (52.0%) while an SOP-trained one solves NSP at 78.9%",
    setup=SETUP + "; segment pairs with SOP against segment pairs with NSP",
    arms=("SOP", "NSP"), metric=SENTIMENT,
    measure=lambda ws, seed: {"SOP": ws.tuned("sop", seed)["accuracy"], "NSP": ws.tuned("nsp", seed)["accuracy"]},
    test=lambda r: greater(r["SOP"], r["NSP"]),
    minutes=2.0, needs=("sop", "nsp")))

add(Claim(
    name="dynamic-masking",
    statement="Masking anew every epoch (dynamic) is at least as good as one fixed mask per sequence (static).",
    paper="Liu et al. (2019, RoBERTa, Table 1): static 78.3 / 84.3 / 92.5 against dynamic 78.7 / 84.0 / 92.9 "
          "(SQuAD 2.0 F1 / MNLI-m / SST-2): comparable or slightly better",
    setup=SETUP + "; dynamic masking against one static mask per sequence, reused when the run passes over the corpus again (it sees each sequence about twice)",
    arms=("dynamic", "static"), metric=SENTIMENT,
    measure=lambda ws, seed: {"dynamic": ws.tuned("wwm", seed)["accuracy"],
                              "static": ws.tuned("static", seed)["accuracy"]},
    test=lambda r: not_worse(r["dynamic"], r["static"], margin=0.01),
    minutes=2.0, needs=("wwm", "static")))

add(Claim(
    name="char-vs-word",
    statement="For Chinese, a character-based model does at least as well as a word-based one (word segmentation "
              "is not necessary).",
    paper="Li et al. (2019, 'Is Word Segmentation Necessary for Deep Learning of Chinese Representations?'): "
          "char-based models match or beat word-based ones on language modelling, translation, sentence matching "
          "and text classification; word vocabularies suffer from sparsity and out-of-vocabulary words",
    setup=SETUP + "; the character model (whole-word masking) against the same model over jieba words (a "
                  "word-level vocabulary four times as large, unknown words split into pieces, token masking)",
    arms=("characters", "words"), metric=SENTIMENT,
    measure=lambda ws, seed: {"characters": ws.tuned("wwm", seed)["accuracy"],
                              "words": ws.tuned("word", seed)["accuracy"]},
    test=lambda r: not_worse(r["characters"], r["words"], margin=0.01),
    minutes=2.0, needs=("wwm", "word")))
