"""build_catalog: --model (once or several times), --models-dir and a models file."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamserve.durations import parse_duration as duration
from streamserve.models import CatalogError, build_catalog, keep_alive_seconds


def test_one_model_is_served_as_always_preloaded_pinned_with_its_aliases() -> None:
    catalog = build_catalog(["smollm2-135m-instruct"], served_names=["smollm2-135m-instruct", "gpt-4o-mini"])
    (spec,) = catalog.specs
    assert spec.preload and spec.pinned
    assert catalog.names == ("smollm2-135m-instruct", "gpt-4o-mini")
    assert catalog.get("gpt-4o-mini") is spec and catalog.get("other") is None


def test_several_models_load_on_demand_and_aliases_of_several_need_a_file() -> None:
    catalog = build_catalog(["smollm2-135m-instruct", "/models/qwen.gguf"])
    assert [s.name for s in catalog.specs] == ["smollm2-135m-instruct", "qwen"]
    assert not any(s.preload or s.pinned for s in catalog.specs)
    with pytest.raises(CatalogError, match="models file"):
        build_catalog(["a.gguf", "b.gguf"], served_names=["x"])


def test_a_models_dir_serves_every_gguf_in_it(tmp_path: Path) -> None:
    for name in ("b.gguf", "a.gguf", "notes.txt"):
        (tmp_path / name).write_text("")
    catalog = build_catalog([], models_dir=tmp_path)
    assert [s.name for s in catalog.specs] == ["a", "b"]
    assert catalog.specs[0].source == str(tmp_path / "a.gguf")


def test_a_models_file_sets_each_models_options(tmp_path: Path) -> None:
    (tmp_path / "chatml.jinja").write_text("{{ messages }}")
    file = tmp_path / "models.toml"
    file.write_text('''
[models.chat]
path = "smollm2-135m-instruct"
aliases = ["gpt-4o-mini", "claude-haiku"]
max_model_len = 2048
max_num_seqs = 4
chat_template = "chatml.jinja"
pinned = true
preload = true

[models.base]
path = "weights/gemma.gguf"
keep_alive = "10m"
''')
    catalog = build_catalog([], models_file=file, duration=duration)
    chat, base = catalog.specs
    assert (chat.name, chat.source, chat.aliases) == ("chat", "smollm2-135m-instruct", ("gpt-4o-mini", "claude-haiku"))
    assert (chat.max_model_len, chat.max_num_seqs, chat.pinned, chat.preload) == (2048, 4, True, True)
    assert chat.chat_template_file == str(tmp_path / "chatml.jinja")
    assert base.source == str(tmp_path / "weights/gemma.gguf") and base.keep_alive == 600.0
    assert not base.pinned and base.max_model_len is None


@pytest.mark.parametrize(("text", "message"), [
    ("[models.a]\npath = 1\n", "needs a path"),
    ("[models.a]\npath = \"x.gguf\"\nctx = 5\n", "unknown keys: ctx"),
    ("[models.a]\npath = \"x.gguf\"\nmax_num_seqs = 0\n", "max_num_seqs must be a positive integer"),
    ("[models.a]\npath = \"x.gguf\"\npinned = \"yes\"\n", "pinned must be true or false"),
    ("[models.a]\npath = \"x.gguf\"\naliases = \"b\"\n", "aliases must be a list"),
    ("[models.a]\npath = \"x.gguf\"\n[models.b]\npath = \"y.gguf\"\naliases = [\"a\"]\n", "given to two models"),
    ("name = 1\n", "no \\[models.NAME\\] table"),
    ("[models.a\n", "cannot read the models file"),
])
def test_a_bad_models_file_is_a_clear_error(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "models.toml"
    file.write_text(text)
    with pytest.raises(CatalogError, match=message):
        build_catalog([], models_file=file, duration=duration)


def test_nothing_to_serve_is_an_error() -> None:
    with pytest.raises(CatalogError, match="no model to serve"):
        build_catalog([])


@pytest.mark.parametrize(("value", "seconds"), [("10m", 600.0), (30, 30.0), ("0", 0.0), (0, 0.0), (-1, float("inf")),
                                                ("-1m", float("inf")), ("2h", 7200.0)])
def test_keep_alive_is_ollamas(value: str | int, seconds: float) -> None:
    assert keep_alive_seconds(value, duration) == seconds


@pytest.mark.parametrize("value", ["soon", True, [1]])
def test_a_keep_alive_that_is_not_a_duration_is_refused(value: object) -> None:
    with pytest.raises(ValueError):
        keep_alive_seconds(value, duration)
