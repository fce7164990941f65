"""Random-weight models with the shapes of real ones, for benchmarks and tests where the hub is out of reach (the
lent GPU machine, CI): throughput and memory do not depend on weight values, and the code paths are the real ones.

    build_model_dir(folder, texts, LLAMA_3B)      # Llama-3.2-3B shapes, a BPE tokenizer trained on `texts`
    build_model_dir(folder, texts, TINY, 8192)    # a 2-layer, 256-wide model of the same kind (seconds on a CPU)
"""

from pathlib import Path

LLAMA_3B = dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
                num_key_value_heads=8, head_dim=128)
TINY = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=64)
SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
            "<|finetune_right_pad_id|>"]


def build_model_dir(target: Path, texts: list[str], shape: dict, vocab: int = 128256) -> Path:
    """A random-weight Llama of `shape` with a BPE tokenizer trained on `texts` and the Llama-3 chat template."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from hive.templates import LLAMA3

    if (target / "config.json").exists():
        return target
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=8000, special_tokens=SPECIALS,
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                                        pad_token="<|finetune_right_pad_id|>")
    tokenizer.chat_template = LLAMA3
    config = LlamaConfig(
        vocab_size=vocab, tie_word_embeddings=True, max_position_embeddings=131072, rms_norm_eps=1e-5,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 32.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
        **shape,
    )
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with torch.device(device):
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target
