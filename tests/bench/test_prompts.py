"""bench/prompts.py: the built-in set, JSONL files, and request bodies for both endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamserve.bench.prompts import Prompt, builtin_prompts, load_prompts, user_prompt


def test_builtin_set_is_mixed() -> None:
    prompts = builtin_prompts()
    names = {p.name for p in prompts}
    assert {"long", "chinese", "count"} <= names
    assert sum(name.startswith("short") for name in names) >= 2
    chinese = next(p for p in prompts if p.name == "chinese")
    assert any("\u4e00" <= ch <= "\u9fff" for ch in chinese.text())
    long = next(p for p in prompts if p.name == "long")
    assert len(long.text()) > 5 * max(len(p.text()) for p in prompts if p.name.startswith("short"))


def test_load_prompts(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text(
        '{"name": "a", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}\n'
        "\n# a comment\n"
        '{"prompt": "plain", "temperature": 0.5, "model": "ignored"}\n',
        encoding="utf-8",
    )
    first, second = load_prompts(path)
    assert first.name == "a" and first.extra == {"max_tokens": 5}
    assert second.name == "line-4" and second.messages == [{"role": "user", "content": "plain"}]
    body = second.body("chat", model="m", max_tokens=9, temperature=0.0, stream=True, include_usage=True)
    assert body["model"] == "m" and body["temperature"] == 0.5 and body["max_tokens"] == 9
    assert first.body("chat", model="m", max_tokens=9, temperature=0.0, stream=False, include_usage=True) == {
        "model": "m",
        "max_tokens": 5,
        "temperature": 0.0,
        "messages": [{"role": "user", "content": "hi"}],
        "stream": False,
    }
    legacy = second.body("completions", model="m", max_tokens=9, temperature=None, stream=True, include_usage=False)
    assert legacy["prompt"] == "plain" and "stream_options" not in legacy


@pytest.mark.parametrize("line", ["not json", "[1]", '{"messages": []}', '{"other": 1}'])
def test_load_prompts_rejects_bad_lines(tmp_path: Path, line: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        load_prompts(path)


def test_empty_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no prompts"):
        load_prompts(path)


def test_text_flattens_content_parts() -> None:
    prompt = Prompt("p", [{"role": "system", "content": None}, {"role": "user", "content": [{"text": "a"}]}])
    assert prompt.text() == "\na"
    assert user_prompt("u", "x").messages == [{"role": "user", "content": "x"}]
