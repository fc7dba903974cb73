"""`bertology corpus prepare|info`: raw text to token shards for pretraining, and what a prepared folder holds."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="prepare pretraining corpora",
                       description="Prepare text corpora as memory-mapped token shards, and inspect them.")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)

    prep = csub.add_parser(
        "prepare", help="tokenize text into memory-mapped shards",
        description="Read text (plain, JSONL or PKU-tagged; folders and .gz too), split sentences, tokenize "
                    "and write token shards with sentence and document boundaries and word starts. Bad lines "
                    "are skipped and counted in the summary (also written to OUT/summary.md).")
    prep.add_argument("inputs", nargs="+", metavar="INPUT",
                      help="files or folders (read recursively, sorted); with --input-format parallel, a TSV file "
                           "(source<TAB>target a line) or two aligned files as SOURCE_FILE::TARGET_FILE")
    prep.add_argument("-o", "--output", required=True, help="folder to write the prepared corpus to")
    prep.add_argument("--tokenizer", required=True, help="tokenizer folder (tokenizer.json or vocab.txt)")
    prep.add_argument("--input-format", choices=("text", "jsonl", "pku", "parallel"), default="text",
                      help="text: documents separated by blank lines; jsonl: one record a line; "
                           "pku: People's Daily word/tag lines, one document a line; parallel: sentence pairs "
                           "(translations), each one document of two sentences, for TLM (default: text)")
    prep.add_argument("--languages", type=_languages, default=None, metavar="SRC,TGT",
                      help="parallel format: the two language names, source then target (e.g. en,zh); their "
                           "order gives the language ids (0, 1)")
    prep.add_argument("--text-field", default="text", help="JSONL field holding the text (default: text)")
    prep.add_argument("--language", choices=("auto", "en", "zh"), default="auto",
                      help="sentence-splitting rules; auto picks zh for documents with CJK ideographs")
    prep.add_argument("--chinese-words", choices=("jieba", "none"), default="jieba",
                      help="word starts of Chinese characters from jieba words (whole-word masking) or per "
                           "character (default: jieba)")
    prep.add_argument("--record-case", action="store_true",
                      help="store each token's original case (none/lower/title/upper/mixed) in case.bin")
    prep.add_argument("--record-pinyin", action="store_true",
                      help="store each Chinese token's pinyin (read in context) in pinyin.bin, for ChineseBERT")
    prep.add_argument("--workers", type=int, default=2, help="tokenizing processes (default: 2)")
    layout = prep.add_mutually_exclusive_group()
    layout.add_argument("--doc-per-file", action="store_true", help="text format: each file is one document")
    layout.add_argument("--doc-per-line", action="store_true", help="text format: each line is one document")
    prep.add_argument("--max-line-chars", type=int, default=100_000,
                      help="skip (and count) longer lines (default: 100000)")
    prep.add_argument("--max-sentence-tokens", type=int, default=4096,
                      help="cut longer sentences into chunks (counted) (default: 4096)")
    prep.add_argument("--shard-tokens", type=int, default=50_000_000,
                      help="start a new shard past this many tokens (default: 50000000)")
    prep.add_argument("--overwrite", action="store_true", help="replace an existing prepared corpus in OUT")
    prep.add_argument("--no-progress", action="store_true", help="no progress bar")
    prep.set_defaults(run=run_prepare)

    info = csub.add_parser("info", help="show what a prepared corpus holds",
                           description="Print the counts, tokenizer and preparation summary of a prepared corpus.")
    info.add_argument("folder", help="a folder written by `bertology corpus prepare`")
    info.set_defaults(run=run_info)


def _languages(text: str) -> list[str]:
    """`en,zh` as a list of names (PrepareConfig checks that there are two)."""
    return [part.strip() for part in text.split(",")]


def run_prepare(args: argparse.Namespace) -> int:
    from ..data.prepare import PrepareConfig, prepare_corpus
    from ..tokenization import load_tokenizer

    # the options are checked before the tokenizer is read, so a bad one fails at once
    config = PrepareConfig(
        input_format=args.input_format, language=args.language,
        chinese_words=None if args.chinese_words == "none" else args.chinese_words,
        record_case=args.record_case, record_pinyin=args.record_pinyin, workers=args.workers,
        shard_tokens=args.shard_tokens, max_line_chars=args.max_line_chars,
        max_sentence_tokens=args.max_sentence_tokens, text_field=args.text_field, doc_per_file=args.doc_per_file,
        doc_per_line=args.doc_per_line, overwrite=args.overwrite, progress=not args.no_progress,
        languages=args.languages,
    )
    summary = prepare_corpus(args.inputs, args.output, load_tokenizer(args.tokenizer), config)
    print(summary.to_table())
    print(f"\nwrote {args.output} (summary in {args.output}/summary.md)")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from ..data import PrepareSummary, TokenCorpus
    from ..utils.table import format_table

    corpus = TokenCorpus(args.folder)
    meta = corpus.meta
    lengths = corpus.sentence_lengths()
    tok = meta.get("tokenizer", {})
    rows = [
        ("documents", f"{corpus.num_documents:,}"),
        ("sentences", f"{corpus.num_sentences:,}"),
        ("tokens", f"{corpus.num_tokens:,}"),
        ("shards", f"{len(meta.get('shards', [])):,}"),
        ("shard checksums", "sha256, verified before training" if corpus.has_checksums else
         "none (prepared by an older version: prepare again to add them)"),
        ("tokens per sentence (mean)", f"{lengths.mean():.1f}" if len(lengths) else "0"),
        ("tokens per sentence (max)", f"{int(lengths.max()) if len(lengths) else 0:,}"),
        ("token dtype", meta["token_dtype"]),
        ("case recorded", "yes" if corpus.has_case else "no"),
        *([("parallel", "yes: " + " -> ".join(meta.get("languages", [])))] if meta.get("parallel") else []),
        ("vocab size", f"{corpus.vocab_size:,}"),
        ("vocab sha256", str(tok.get("vocab_sha256", ""))[:16]),
    ]
    print(format_table(("what", "value"), rows))
    if "summary" in meta:
        summary = PrepareSummary.from_dict(meta["summary"])
        print("\npreparation summary:\n")
        print(summary.to_table())
    return 0
