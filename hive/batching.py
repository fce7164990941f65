"""Length-grouped batches for training (training.group_by_length).

Without a varlen attention kernel (flash-attn, xformers, or torch >= 2.12's varlen_attn with GQA), Unsloth attends a
padding-free row with one attention call per run of equally long samples, and every call costs CPU time in each
layer's forward, recompute and backward. A batch of 16 random chat samples has 16 runs: on an H100 that made a step of
3,000 tokens take 0.89 s, against 0.52 s for the same tokens in one run (bench/bench_packing.py). So batches are drawn
from samples of the same length bucket, and in padding-free rows each sample is padded at its end to its bucket's
length: the row becomes a single run. Causal attention never looks forward, so the tail pads change nothing for the
sample's own tokens, and their labels are -100. The price is the pads (about 7% more tokens with 32-token buckets).

The original Hive also grouped batches by length (Trainer's group_by_length); order is still random: buckets are
shuffled within, batches are shuffled across, with a seed per epoch so a resumed run sees the same batches.
"""

import random

BUCKET = 32  # tokens: wide enough to fill batches from real chats, narrow enough to waste little on pads


def bucket_length(length: int, bucket: int = BUCKET) -> int:
    return -(-length // bucket) * bucket


def pad_to_bucket(input_ids: list[int], labels: list[int], pad_id: int, bucket: int = BUCKET) -> tuple[list, list]:
    """The sample with pad tokens (label -100) appended up to its bucket's length."""
    extra = bucket_length(len(input_ids), bucket) - len(input_ids)
    return input_ids + [pad_id] * extra, labels + [-100] * extra


def grouped_order(lengths: list[int], batch_size: int, seed: int, bucket: int = BUCKET) -> list[int]:
    """Sample indices in an order whose consecutive chunks of `batch_size` are batches of one length bucket.

    The samples left over in each bucket fill mixed batches of neighbouring lengths; the one partial batch (when the
    count is not a multiple of batch_size) comes last, so every chunk boundary stays a batch boundary."""
    rng = random.Random(seed)
    by_bucket: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_bucket.setdefault(bucket_length(length, bucket), []).append(index)
    batches, rest = [], []
    for size in sorted(by_bucket):
        members = by_bucket[size]
        rng.shuffle(members)
        full = len(members) - len(members) % batch_size
        batches += [members[i:i + batch_size] for i in range(0, full, batch_size)]
        rest += members[full:]
    rest.sort(key=lambda i: lengths[i])  # mixed batches of neighbouring lengths: few runs each
    mixed = [rest[i:i + batch_size] for i in range(0, len(rest), batch_size)]
    partial = [mixed.pop()] if mixed and len(mixed[-1]) < batch_size else []
    batches += mixed
    rng.shuffle(batches)
    batches += partial
    for batch in batches:
        batch.sort(key=lambda i: -lengths[i])  # equal lengths side by side in the row
    return [i for batch in batches for i in batch]


class GroupedSampler:
    """A Trainer sampler yielding grouped_order(); the Trainer (through accelerate) calls set_epoch every epoch."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, bucket: int = BUCKET):
        self.lengths, self.batch_size, self.seed, self.bucket = lengths, batch_size, seed, bucket
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        return iter(grouped_order(self.lengths, self.batch_size, self.seed * 1000 + self.epoch, self.bucket))
