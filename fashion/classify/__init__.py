"""The classifiers: the networks (``networks``: also the feature extractor of the quality metrics, importable
without the training stack) and the task that trains them and measures FGSM robustness (``task``)."""
