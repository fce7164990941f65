"""Makes a bigger NVIDIA GPU behave like Kaggle's T4 for bench/bench_t4.py: no bf16, so Hive trains, scores and
exports in fp16 as it does on a T4, and at most 15 GiB of GPU memory per process. Python imports `sitecustomize` at
start-up from PYTHONPATH; the benchmark puts this folder first and sets EMULATE_T4=1 for every process it starts."""

import os

if os.environ.get("EMULATE_T4"):
    import torch

    if torch.cuda.is_available():
        def is_bf16_supported(including_emulation=True):  # torch's own signature, so libraries that wrap it still work
            return False

        torch.cuda.is_bf16_supported = is_bf16_supported
        total = torch.cuda.get_device_properties(0).total_memory
        torch.cuda.set_per_process_memory_fraction(min(1.0, 15 * 2**30 / total))
