"""Training: the only package that imports lightning, torchmetrics and scikit-learn's metrics.

- `module`: the Lightning module (loss, SpecAugment, mixup, optimiser, schedule);
- `fit`: one split → one trained `AudioClassifier` (checkpoints, epoch choice, scoring);
- `augment`: waveform, SpecAugment and mixup augmentation; `cache`: augmented copies as images;
- `cv`: k-fold cross-validation and one-model training for bundles;
- `robustness`: test folds again, quieter, noisier and band-limited;
- `reports`: summary.json/.md and the confusion matrix;
- `study`: recipe variants through the same folds, compared fairly.
"""
