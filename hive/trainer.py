"""The Trainer that train.py runs, and its callbacks.

Import this module only after hive.training.load() has loaded the model: with the Unsloth backend, Unsloth must
patch transformers and TRL before they are imported, and HiveTrainer then extends the SFTTrainer it patched.

- HiveTrainer draws batches grouped by length within a token limit (hive/batching.py), runs a padded batch over that
  limit as several forward/backward passes with the same gradient, and writes every checkpoint into runs.SAVING
  first, renaming it into place only when complete: a kill -9 (or Kaggle ending the session) mid-save leaves the
  previous checkpoints intact and no half-written one.
- StopOnInterrupt: the first Ctrl-C saves a checkpoint after the current step and stops; a second one quits at once.
- SaveEveryMinutes: a checkpoint also every training.save_minutes of wall-clock time, so a session that is cut off
  loses minutes, not save_steps steps.
"""

import contextlib
import shutil
import signal
import threading
import time
from pathlib import Path

import torch
from transformers import TrainerCallback
from trl import SFTTrainer

from hive import batching, fileio, runs


class HiveTrainer(SFTTrainer):
    def __init__(self, *args, group_by_length: bool, max_tokens_per_pass: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.group_by_length, self.max_tokens_per_pass = group_by_length, max_tokens_per_pass
        self._staging: Path | None = None
        if self.args.fp16:
            # SFTTrainer casts the adapter of a 4-bit model to bf16 (the QLoRA recipe), but fp16 training (a T4: no
            # bf16) unscales float32 gradients only; a bf16 one stops the first optimizer step ("not implemented for
            # 'BFloat16'"). So the weights that train stay float32 there.
            for param in self.model.parameters():
                if param.requires_grad and param.dtype != torch.float32:
                    param.data = param.data.float()

    def get_train_dataloader(self):
        if not self.group_by_length:
            return super().get_train_dataloader()
        from torch.utils.data import DataLoader

        lengths = [len(ids) for ids in self.train_dataset["input_ids"]]
        sampler = batching.GroupedSampler(lengths, self._train_batch_size, self.max_tokens_per_pass, self.args.seed)
        return self.accelerator.prepare(DataLoader(
            self.train_dataset, batch_sampler=batching.GroupedBatchSampler(sampler), collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers, pin_memory=self.args.dataloader_pin_memory))

    def training_step(self, model, inputs, num_items_in_batch=None):
        passes = batching.split_passes(inputs, self.max_tokens_per_pass)
        if len(passes) == 1:
            return super().training_step(model, inputs, num_items_in_batch)
        # Each pass's loss is a sum over its reply tokens divided by the whole batch's count, so the passes' gradients
        # add up to the batch's; without that count each pass would be averaged on its own.
        assert num_items_in_batch is not None, "split passes need the Trainer's num_items_in_batch"
        loss = 0.0
        for i, part in enumerate(passes):
            last = i == len(passes) - 1
            with contextlib.nullcontext() if last else self.accelerator.no_sync(model):
                loss = loss + super().training_step(model, part, num_items_in_batch)
        return loss

    def _get_output_dir(self, trial) -> str:
        return str(self._staging) if self._staging is not None else super()._get_output_dir(trial)

    def _save_checkpoint(self, model, trial) -> None:
        run_dir = Path(self.args.output_dir)
        name = f"checkpoint-{self.state.global_step}"
        self._staging = run_dir / runs.SAVING
        try:
            super()._save_checkpoint(model, trial)  # every process writes its part (e.g. its RNG state) there
        finally:
            self._staging = None
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            fileio.replace_dir(run_dir / runs.SAVING / name, run_dir / name)
            shutil.rmtree(run_dir / runs.SAVING, ignore_errors=True)
            for old in runs.checkpoints(run_dir)[:-self.args.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        self.accelerator.wait_for_everyone()

    def save_final_model(self, folder: Path) -> None:
        """The adapter (and tokenizer) into `folder`, written completely before it appears there."""
        staged = folder.parent / runs.SAVING / folder.name
        self.save_model(str(staged))
        self.accelerator.wait_for_everyone()
        if self.args.should_save:
            self.processing_class.save_pretrained(str(staged))
            fileio.replace_dir(staged, folder)
            shutil.rmtree(staged.parent, ignore_errors=True)
        self.accelerator.wait_for_everyone()


class StopOnInterrupt(TrainerCallback):
    """The first Ctrl-C becomes "save a checkpoint after this step, then stop"; a second one quits at once.
    `request_stop()` does the same without a signal."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def request_stop(self, *_):
        if not self.requested:
            print("\nCtrl-C: saving a checkpoint after this step (press again to quit without saving)", flush=True)
        self.requested = True
        self._restore()

    def _restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
            self._previous = signal.signal(signal.SIGINT, self.request_stop)

    def on_step_end(self, args, state, control, **kwargs):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(self, args, state, control, **kwargs):
        self._restore()


class SaveEveryMinutes(TrainerCallback):
    """Save a checkpoint once `minutes` of wall-clock time have passed since the last one (0: never). All processes
    of a data-parallel run take the same decision: each one's clock is compared, and any that is due makes all save."""

    def __init__(self, minutes: float):
        self.seconds = minutes * 60
        self.last = time.monotonic()

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.monotonic()

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds > 0 and _any_process(time.monotonic() - self.last >= self.seconds, args.device):
            control.should_save = True

    def on_save(self, args, state, control, **kwargs):
        self.last = time.monotonic()


def _any_process(flag: bool, device) -> bool:
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return flag
    value = torch.tensor([int(flag)], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())
