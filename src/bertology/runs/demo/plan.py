"""How big each stage of the demo is: the default (about 15 minutes on 2 CPU cores) and `--quick` (about 3)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DemoPlan:
    #: People's Daily lines the tokenizer and the pretraining corpus read (None: all 19,484)
    corpus_lines: int | None = None
    #: unlabelled training reviews added to the pretraining text (None: all 13,890 of the task's training split)
    review_lines: int | None = None
    vocab_size: int = 8000
    #: the Chinese model's size (a preset of `BertConfig.preset`) and its pretraining steps
    preset: str = "bert-L4-H256"
    pretrain_steps: int = 800
    #: 1e-3 left the 4 x 256 model at the most-frequent-token plateau for 500 steps (masked-token accuracy
    #: 0.048); 5e-4 reached 0.125
    pretrain_learning_rate: float = 5e-4
    #: short sequences, large batches and no dropout: at 128 tokens, batch 32 and dropout 0.1 a small model only
    #: learnt to copy the visible labelled tokens in 600 steps (accuracy on hidden tokens 0.043, the
    #: most-frequent-token rate); at 32 tokens, batch 128 and no dropout it reached 0.116 in 500 steps
    pretrain_batch: int = 128
    pretrain_length: int = 32
    pretrain_dropout: float = 0.0
    #: review sentiment splits (the test split is the task's whole test split when None)
    train: int = 4000
    dev: int = 500
    test: int | None = None
    epochs: int = 2
    learning_rate: float = 3e-4
    max_length: int = 128
    #: the TinyBERT student: half the teacher's layers and width
    student: dict[str, int] = field(default_factory=lambda: {"num_hidden_layers": 2, "hidden_size": 128,
                                                              "num_attention_heads": 2, "intermediate_size": 512})
    distill_epochs: dict[str, int] = field(default_factory=lambda: {"intermediate": 2, "prediction": 2})
    student_learning_rate: float = 1e-3
    #: sentences probed for part of speech, and read for attention statistics. The quick plan probes 800: with
    #: 300 its pretrained encoder led random weights by 0.025 at the best layer, with 800 by 0.049
    probe_sentences: int = 1000
    attention_sentences: int = 200
    #: reviews timed one at a time for the accuracy-against-latency plot
    latency_texts: int = 50
    #: the English chapter: MiniLM on WordNet glosses
    english_train: int = 1500
    english_epochs: int = 2


DEFAULT = DemoPlan()
QUICK = DemoPlan(corpus_lines=4000, review_lines=4000, vocab_size=5000, preset="bert-L2-H128", pretrain_steps=800,
                 pretrain_learning_rate=1e-3, train=800, dev=200, epochs=3, learning_rate=5e-4,
                 student={"num_hidden_layers": 1, "hidden_size": 64, "num_attention_heads": 2, "intermediate_size": 256},
                 distill_epochs={"intermediate": 1, "prediction": 2}, probe_sentences=800, attention_sentences=50,
                 latency_texts=20, english_train=300, english_epochs=1)
