"""The classifiers: ``classify/dense`` and ``classify/cnn`` (the suite's feature extractor)."""
from fashion.classify import ClassifierTask
from jobs.catalogue import Job, Resources, add

add(Job("classify/dense", "classify", ClassifierTask,
        description="Dense 784-128-10 classifier, accuracy per epoch, FGSM robustness",
        defaults={"arch": "dense", "epochs": 20},
        resources=Resources(gpus_per_node=1, cpus_per_task=4, mem_gb=8, timeout_min=30)))
add(Job("classify/cnn", "classify", ClassifierTask,
        description="Conv classifier (5x5 conv blocks), FGSM robustness; feature extractor for the metrics",
        defaults={"arch": "cnn"},
        resources=Resources(gpus_per_node=1, cpus_per_task=4, mem_gb=8, timeout_min=60)))
