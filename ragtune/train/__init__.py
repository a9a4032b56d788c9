"""Grounded adapter training: RAFT-style examples, an explicit torch loop, registration."""

from ragtune.train.data import (
    DataSettings,
    DataSplit,
    TrainingExample,
    build_examples,
    examples_sha256,
    split_by_document,
)
from ragtune.train.loop import (
    Encoded,
    TrainProgress,
    TrainResult,
    TrainSettings,
    encode_example,
    train,
)
from ragtune.train.run import TrainedAdapter, train_adapter

__all__ = [
    "DataSettings",
    "DataSplit",
    "Encoded",
    "TrainProgress",
    "TrainResult",
    "TrainSettings",
    "TrainedAdapter",
    "TrainingExample",
    "build_examples",
    "encode_example",
    "examples_sha256",
    "split_by_document",
    "train",
    "train_adapter",
]
