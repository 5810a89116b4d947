"""Model on the real SmolLM2 GGUF: tokenizer round trip, end-of-generation, control tokens, metadata."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamserve.llama import Model, ModelLoadError
from streamserve.models import resolve_model


@pytest.fixture()
def model(smollm2: Model) -> Model:
    return smollm2


def _special(model: Model, text: str) -> int:
    ids = model.tokenize(text, add_special=False, parse_special=True)
    assert len(ids) == 1, f"{text!r} should be one special token, got {ids}"
    return ids[0]


@pytest.mark.parametrize(
    "text",
    [
        "Hello, world!",
        " leading space and  double  spaces\n\ttabs\n",
        "Ünïcödé café naïve — “quotes”",
        "中文分词测试，你好世界",
        "emoji 🙂👍🏽 and a family 👨‍👩‍👧",
        "code: def f(x):\n    return x ** 2  # comment",
        "a" * 300,
    ],
)
def test_tokenize_and_token_bytes_round_trip(model: Model, text: str) -> None:
    ids = model.tokenize(text, add_special=False, parse_special=False)
    assert ids and all(0 <= i < model.n_vocab for i in ids)
    assert b"".join(model.token_bytes(i) for i in ids) == text.encode("utf-8")


def test_long_multibyte_text_round_trips(model: Model) -> None:
    text = "🙂" * 200
    ids = model.tokenize(text, add_special=False, parse_special=False)
    assert b"".join(model.token_bytes(i) for i in ids) == text.encode()


def test_empty_text_has_no_tokens(model: Model) -> None:
    assert model.tokenize("", add_special=False, parse_special=False) == []


def test_special_tokens_parse_only_when_asked(model: Model) -> None:
    text = "<|im_start|>user"
    parsed = model.tokenize(text, add_special=False, parse_special=True)
    plain = model.tokenize(text, add_special=False, parse_special=False)
    assert parsed[0] == _special(model, "<|im_start|>")
    assert _special(model, "<|im_start|>") not in plain
    assert b"".join(model.token_bytes(i) for i in plain) == text.encode()


def test_control_tokens_have_no_text_bytes(model: Model) -> None:
    assert model.token_bytes(_special(model, "<|im_start|>")) == b""
    assert model.token_bytes(_special(model, "<|im_end|>")) == b""


def test_is_eog(model: Model) -> None:
    assert model.is_eog(_special(model, "<|im_end|>"))
    assert model.is_eog(_special(model, "<|endoftext|>"))
    assert not model.is_eog(_special(model, "<|im_start|>"))
    for token in model.tokenize("Hello world.", add_special=False, parse_special=False):
        assert not model.is_eog(token)


def test_control_texts(model: Model) -> None:
    texts = model.control_texts
    assert {"<|im_start|>", "<|im_end|>", "<|endoftext|>"} <= texts
    assert "Hello" not in texts
    assert model.control_texts is texts  # computed once


def test_bos_eos_and_add_bos(model: Model) -> None:
    assert model.eos_text == "<|im_end|>"
    assert model.add_bos is False
    assert model.tokenize("Hi", add_special=True, parse_special=False) == model.tokenize(
        "Hi", add_special=False, parse_special=False
    )


def test_metadata(model: Model) -> None:
    assert model.architecture == "llama"
    assert model.metadata("general.architecture") == "llama"
    assert model.metadata("no.such.key") is None
    assert model.n_vocab == 49152
    assert model.n_ctx_train >= 2048
    assert model.name


def test_chat_template_is_chatml(model: Model) -> None:
    assert model.chat_template is not None
    assert "<|im_start|>" in model.chat_template
    assert "<|im_end|>" in model.chat_template
    assert "add_generation_prompt" in model.chat_template


@pytest.mark.parametrize("token_id", [-1, -479001599, 49152, 2**31 - 1])
def test_ids_outside_the_vocabulary_have_no_bytes_and_do_not_end_generation(model: Model, token_id: int) -> None:
    # llama.cpp aborts the whole process on such an id (the fuzz test found one reaching it).
    assert model.token_bytes(token_id) == b"" and not model.is_eog(token_id)


def test_bad_file_raises_model_load_error(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-model.gguf"
    bogus.write_bytes(b"GGUF but not really")
    with pytest.raises(ModelLoadError):
        Model(bogus, extra_bufts=False)


def test_close_is_idempotent() -> None:
    _, path = resolve_model("smollm2-135m-instruct")
    model = Model(path, extra_bufts=False)
    model.close()
    model.close()
    assert model.ptr is None
