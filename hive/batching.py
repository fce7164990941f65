"""Length-grouped batches for training (training.group_by_length, training.max_tokens_per_pass).

Chat samples differ in length (median ~200 tokens, some over 1,000), so random batches are mostly padding, or, as
padding-free rows, many attention calls: without a varlen kernel (flash-attn, xformers, or torch >= 2.12's varlen_attn
with GQA) Unsloth attends a padding-free row with one call per run of equally long samples, and each call costs CPU
time in every layer's forward, recompute and backward (H100: a 3,000-token step of 16 runs took 0.89 s, of one run
0.52 s; bench/bench_packing.py). So each batch is drawn from one 32-token length bucket: padded, it carries few pads
and runs through Unsloth's compiled decoder layers (which padding-free rows skip); padding-free, each sample is padded
at its end to its bucket's length so the row is a single run (causal attention never looks forward, so the tail pads
change nothing for the sample's own tokens, and their labels are -100).

A forward pass's activation memory grows with its tokens (about 166 KB per token for a 3B model at 4-bit), so a batch
takes fewer samples where `batch_size` of them would pass `max_tokens`, and a padded batch over the limit from any
other sampler is split into passes (split_passes) that add up to the same optimizer step.

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


def rows_per_batch(length: int, batch_size: int, max_tokens: int, bucket: int = BUCKET) -> int:
    """Samples of `length` tokens per batch: batch_size, fewer where that many would pass max_tokens (0: no limit)."""
    if max_tokens <= 0:
        return batch_size
    return max(1, min(batch_size, max_tokens // bucket_length(length, bucket)))


def grouped_batches(lengths: list[int], batch_size: int, max_tokens: int, seed: int,
                    bucket: int = BUCKET) -> list[list[int]]:
    """Every sample index once, in batches drawn from one length bucket, in random order.

    A batch holds batch_size samples, or fewer where their bucket length times their count would pass max_tokens:
    that bounds a forward pass's activation memory, the same for long and short samples. The samples left over in
    each bucket fill mixed batches of neighbouring lengths. The number of batches does not depend on the seed (the
    Trainer plans its steps from it), and each batch is sorted longest first."""
    rng = random.Random(seed)
    by_bucket: dict[int, list[int]] = {}
    for index, length in enumerate(lengths):
        by_bucket.setdefault(bucket_length(length, bucket), []).append(index)
    batches, rest = [], []
    for size in sorted(by_bucket):
        members = by_bucket[size]
        rng.shuffle(members)
        rows = rows_per_batch(size, batch_size, max_tokens, bucket)
        full = len(members) - len(members) % rows
        batches += [members[i:i + rows] for i in range(0, full, rows)]
        rest += members[full:]
    # leftovers by bucket, shortest first: every batch is limited by its last (longest) bucket
    rest.sort(key=lambda i: bucket_length(lengths[i], bucket))
    mixed: list[list[int]] = []
    for i in rest:
        if not mixed or len(mixed[-1]) >= rows_per_batch(lengths[i], batch_size, max_tokens, bucket):
            mixed.append([])
        mixed[-1].append(i)
    batches += mixed
    rng.shuffle(batches)
    for batch in batches:
        batch.sort(key=lambda i: -lengths[i])  # equal lengths side by side in a padding-free row
    return batches


class GroupedSampler:
    """The indices of grouped_batches(), batch after batch, with a seed per epoch so a resumed run sees the same
    batches; the Trainer (through accelerate) calls set_epoch every epoch."""

    def __init__(self, lengths: list[int], batch_size: int, max_tokens: int, seed: int, bucket: int = BUCKET):
        self.lengths, self.batch_size, self.max_tokens = lengths, batch_size, max_tokens
        self.seed, self.bucket = seed, bucket
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        return grouped_batches(self.lengths, self.batch_size, self.max_tokens, self.seed * 1000 + self.epoch,
                               self.bucket)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        return (i for batch in self.batches() for i in batch)


class GroupedBatchSampler:
    """A DataLoader batch_sampler of the GroupedSampler's batches, which differ in size. accelerate shards it across
    GPUs batch by batch and reaches the epoch through `.sampler`."""

    def __init__(self, sampler: GroupedSampler):
        self.sampler = sampler
        self.count = len(sampler.batches())

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return self.count

    def __iter__(self):
        return iter(self.sampler.batches())


def split_passes(inputs: dict, max_tokens: int) -> list[dict]:
    """A padded batch (right-padded rows) as consecutive row slices of at most `max_tokens` rows x width each, each
    trimmed to its own longest row. A row is never cut, so a row longer than `max_tokens` makes a pass of its own.

    Passes of one batch add up to the same gradient as the whole batch when the loss is normalized by the batch's
    target-token count (the Trainer's num_items_in_batch): this bounds activation memory without changing training."""
    ids = inputs["input_ids"]
    rows = ids.shape[0]
    if max_tokens <= 0 or ids.dim() != 2 or rows * ids.shape[1] <= max_tokens:
        return [inputs]
    mask = inputs.get("attention_mask")
    lengths = mask.sum(1).tolist() if mask is not None else [ids.shape[1]] * rows
    bounds, start, width = [], 0, 0
    for row, length in enumerate(lengths):
        wider = max(width, length)
        if row > start and (row - start + 1) * wider > max_tokens:
            bounds.append((start, row, width))
            start, wider = row, length
        width = wider
    bounds.append((start, rows, width))

    def part(value, begin, end, width):
        if not hasattr(value, "shape") or value.dim() == 0 or value.shape[0] != rows:
            return value
        value = value[begin:end]
        return value[:, :width] if value.dim() >= 2 and value.shape[1] == ids.shape[1] else value

    return [{key: part(value, b, e, w) for key, value in inputs.items()} for b, e, w in bounds]
