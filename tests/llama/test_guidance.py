"""The llguidance tokenizer built from the llama vocabulary."""

from __future__ import annotations

from streamserve.llama import Model, guidance_tokenizer


def test_vocabulary_and_end_of_generation_tokens(smollm2: Model) -> None:
    tokenizer = guidance_tokenizer(smollm2)
    assert tokenizer.vocab_size == smollm2.n_vocab
    eog = {t for t in range(smollm2.n_vocab) if smollm2.is_eog(t)}
    assert set(tokenizer.eos_tokens) == eog
    im_end = smollm2.tokenize("<|im_end|>", add_special=False, parse_special=True)
    assert len(im_end) == 1 and im_end[0] in tokenizer.eos_tokens


def test_token_bytes_agree(smollm2: Model) -> None:
    tokenizer = guidance_tokenizer(smollm2)
    ids = smollm2.tokenize('{"city": "Zürich"}', add_special=False, parse_special=False)
    assert tokenizer.decode_bytes(ids) == b"".join(smollm2.token_bytes(t) for t in ids)
