"""Length-grouped batches: every sample once per epoch, batches of one length bucket within a token limit."""

import random

from hive import batching


def lengths_of(n, seed=0):
    rng = random.Random(seed)
    return [rng.choice([rng.randint(20, 90), rng.randint(90, 400)]) for _ in range(n)]


def test_every_sample_once_and_most_batches_from_one_bucket():
    lengths = lengths_of(1000)
    batches = batching.grouped_batches(lengths, 16, 0, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) <= 16 for b in batches) and sum(len(b) == 16 for b in batches) >= 0.9 * len(batches)
    buckets = [{batching.bucket_length(lengths[i]) for i in b} for b in batches]
    assert sum(len(b) == 1 for b in buckets) >= 0.75 * len(batches)
    # each batch longest first, so equal lengths sit side by side in a padding-free row
    assert all([lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True) for b in batches)


def test_a_token_limit_takes_fewer_long_samples_per_batch():
    lengths = lengths_of(1000)
    batches = batching.grouped_batches(lengths, 16, 2048, seed=1)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert all(len(b) * batching.bucket_length(max(lengths[i] for i in b)) <= 2048 for b in batches)
    assert max(len(b) for b in batches if min(lengths[i] for i in b) > 300) <= 2048 // 320
    assert max(len(b) for b in batches) == 16  # short samples still come 16 at a time
    assert sorted(batching.grouped_batches([3000, 10], 16, 2048, seed=0)) == [[0], [1]]  # a longer one trains alone


def test_the_batches_are_random_but_reproducible_per_epoch_and_their_count_fixed():
    lengths = lengths_of(300)
    sampler = batching.GroupedSampler(lengths, 8, 1024, seed=42)
    loader = batching.GroupedBatchSampler(sampler)
    first = list(loader)
    assert first == list(batching.GroupedBatchSampler(batching.GroupedSampler(lengths, 8, 1024, seed=42)))
    assert list(sampler) == [i for b in first for i in b] and len(sampler) == 300
    loader.set_epoch(1)  # a resumed run sees the same batches per epoch; other epochs other batches
    assert list(loader) != first and sorted(map(sorted, loader)) != sorted(map(sorted, first))
    for epoch in range(5):
        loader.set_epoch(epoch)
        assert len(list(loader)) == len(loader)


def test_padding_to_the_bucket_adds_unlearned_pad_tokens():
    ids, labels = batching.pad_to_bucket([5, 6, 7], [-100, 6, 7], pad_id=0, bucket=4)
    assert (ids, labels) == ([5, 6, 7, 0], [-100, 6, 7, -100])
    assert batching.pad_to_bucket([1] * 32, [1] * 32, 0) == ([1] * 32, [1] * 32)  # already a bucket length


def test_a_long_batch_is_split_into_passes_that_fit_and_lose_nothing():
    import torch

    lengths = [9, 7, 6, 4, 4, 3, 1]
    ids = torch.zeros(len(lengths), 10, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.arange(1, n + 1) + 100 * row
        mask[row, :n] = 1
    labels = ids.masked_fill(mask == 0, -100)
    passes = batching.split_passes({"input_ids": ids, "attention_mask": mask, "labels": labels}, max_tokens=16)
    assert [p["input_ids"].shape for p in passes] == [(1, 9), (2, 7), (4, 4)]
    assert all(p["input_ids"].numel() <= 16 for p in passes)
    assert torch.equal(torch.cat([p["labels"][p["labels"] != -100] for p in passes]), labels[labels != -100])
    whole = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    assert batching.split_passes(whole, max_tokens=0) == [whole]
    assert batching.split_passes(whole, max_tokens=70) == [whole]


def test_a_row_longer_than_the_limit_is_a_pass_of_its_own():
    import torch

    ids = torch.ones(3, 8, dtype=torch.long)
    passes = batching.split_passes({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, max_tokens=5)
    assert [p["input_ids"].shape for p in passes] == [(1, 8), (1, 8), (1, 8)]
