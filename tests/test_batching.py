"""Length-grouped batches: every sample once per epoch, batches of one length bucket, boundaries kept."""

import random

from hive import batching


def lengths_of(n, seed=0):
    rng = random.Random(seed)
    return [rng.choice([rng.randint(20, 90), rng.randint(90, 400)]) for _ in range(n)]


def chunks(order, size):
    return [order[i:i + size] for i in range(0, len(order), size)]


def test_every_sample_once_and_most_batches_from_one_bucket():
    lengths = lengths_of(1000)
    order = batching.grouped_order(lengths, 16, seed=1)
    assert sorted(order) == list(range(1000))
    batches = chunks(order, 16)
    assert all(len(b) == 16 for b in batches[:-1]) and len(batches[-1]) == 1000 % 16
    buckets = [{batching.bucket_length(lengths[i]) for i in b} for b in batches]
    assert sum(len(b) == 1 for b in buckets) >= 0.75 * len(batches)
    # each batch longest first, so equal lengths sit side by side in a padding-free row
    assert all([lengths[i] for i in b] == sorted((lengths[i] for i in b), reverse=True) for b in batches)


def test_the_order_is_random_but_reproducible_per_epoch():
    lengths = lengths_of(300)
    sampler = batching.GroupedSampler(lengths, 8, seed=42)
    first = list(sampler)
    assert first == list(batching.GroupedSampler(lengths, 8, seed=42))  # a resumed run sees the same batches
    sampler.set_epoch(1)
    assert sorted(list(sampler)) == sorted(first) and list(sampler) != first
    assert len(sampler) == 300


def test_batches_that_divide_evenly_have_no_partial_batch():
    lengths = [40] * 32 + [100] * 32
    batches = chunks(batching.grouped_order(lengths, 16, seed=0), 16)
    assert len(batches) == 4 and all(len({lengths[i] for i in b}) == 1 for b in batches)


def test_padding_to_the_bucket_adds_unlearned_pad_tokens():
    ids, labels = batching.pad_to_bucket([5, 6, 7], [-100, 6, 7], pad_id=0, bucket=4)
    assert (ids, labels) == ([5, 6, 7, 0], [-100, 6, 7, -100])
    assert batching.pad_to_bucket([1] * 32, [1] * 32, 0) == ([1] * 32, [1] * 32)  # already a bucket length
