"""Load the tokenizer of a local model directory, with a pad token guaranteed. No downloads."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from simpo_live.data.errors import DataError


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """`AutoTokenizer` from a local directory; a tokenizer without a pad token pads with its EOS."""
    directory = Path(path)
    if not directory.is_dir():
        raise DataError(f"{directory}: tokenizer directory not found (set model.tokenizer_path or model.path)")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    except (OSError, ValueError) as e:
        raise DataError(f"{directory}: cannot load a tokenizer from this directory ({e})") from e
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise DataError(f"{directory}: the tokenizer has neither a pad token nor an EOS token to pad with")
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
