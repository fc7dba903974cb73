"""Looking inside a model (BERTology): probing classifiers with control tasks, structural probes, attention
statistics, cloze and robustness probes."""
