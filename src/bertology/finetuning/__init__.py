"""Fine-tuning: task files to examples (`data`), features and batches (`features`), one encoder with a head per
task (`model`), predictions and metrics (`predict`), saved models for evaluate/predict (`session`).

What differs between tasks is a task kind (`tasks`: classification, regression, tagging, qa, multiple_choice);
what regularizes training is a named regularizer (`regularization`: adversarial methods, mixout, self-ensemble,
self-distillation). Each is a registry a new component joins with one module. Runs are assembled in
`bertology.runs.finetune`; real task data sets are built by `bertology.datasets`.
"""
