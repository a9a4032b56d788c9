"""Grounded adapter training: RAFT-style examples, an explicit torch loop, registration; and
the support model's generated claims and fine-tuning."""

from ragtune.train.claims import KINDS, Claim, SourceQuestion, build_claims, claims_sha256
from ragtune.train.data import (
    DataSettings,
    DataSplit,
    TrainingExample,
    build_examples,
    examples_sha256,
    held_documents,
    split_by_document,
)
from ragtune.train.lm import TextExample, encode_text, texts_sha256
from ragtune.train.loop import (
    Encoded,
    TrainProgress,
    TrainResult,
    TrainSettings,
    encode_example,
    train,
)
from ragtune.train.run import TrainedAdapter, train_adapter
from ragtune.train.support_model import (
    SupportTrainSettings,
    TrainedSupportModel,
    train_support_model,
)

__all__ = [
    "KINDS",
    "Claim",
    "DataSettings",
    "DataSplit",
    "Encoded",
    "SourceQuestion",
    "SupportTrainSettings",
    "TextExample",
    "TrainProgress",
    "TrainResult",
    "TrainSettings",
    "TrainedAdapter",
    "TrainedSupportModel",
    "TrainingExample",
    "build_claims",
    "build_examples",
    "claims_sha256",
    "encode_example",
    "encode_text",
    "examples_sha256",
    "held_documents",
    "split_by_document",
    "texts_sha256",
    "train",
    "train_adapter",
    "train_support_model",
]
