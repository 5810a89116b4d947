"""The rules policy: the TOML format and its errors, normalized matching, and what a scan holds back."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamserve.moderation import RulesError, RulesPolicy, Window
from streamserve.moderation.rules import parse_rules

RULES = """\
[harassment]
words = ["idiot", "shut up"]
patterns = ["\\\\bstupid\\\\b"]

["self-harm"]
words = ["kill myself"]
"""


@pytest.fixture(scope="module")
def policy() -> RulesPolicy:
    return RulesPolicy(parse_rules(RULES))


@pytest.mark.parametrize("text", [
    "you idiot", "You IDIOT!", "1d10t", "i.d.i.o.t", "i-d-i-o-t", "idiooot", "ìdíøt".replace("ø", "o"),
    "ｉｄｉｏｔ", "id\u200biot", "іdiot",  # fullwidth, a zero-width space, a Cyrillic і
    "so stupid.", "SHUT   UP", "shut-up",
])
def test_obfuscated_words_match(policy: RulesPolicy, text: str) -> None:
    assert policy.score([text])[0].flagged_categories == {"harassment"}


@pytest.mark.parametrize("text", ["idiots", "idiom", "stupidity", "shut upstairs", "hello", "kid i ot"])
def test_whole_words_only(policy: RulesPolicy, text: str) -> None:
    assert not policy.score([text])[0].flagged


def test_categories_and_scores(policy: RulesPolicy) -> None:
    result = policy.score(["I will kill myself, idiot"])[0]
    assert result.flagged_categories == {"harassment", "self-harm"}
    assert result.score("self-harm") == 1.0 and result.score("hate") == 0.0
    assert (20, 25) in result.spans


@pytest.mark.parametrize(("text", "final", "cleared", "flagged"), [
    ("you i", False, 0, False),          # "i" may start "idiot": held
    ("you idi", False, 0, False),
    ("you idiot", False, 0, False),      # complete, but "idiots" would not match: still held
    ("you idiot ", False, 0, True),
    ("you idiots", False, 6, False),
    ("you is", False, 2, False),
    ("you idiot", True, 0, True),
    ("you i", True, 1, False),           # the stream ended: nothing can follow
])
def test_scan_holds_only_a_possible_match(policy: RulesPolicy, text: str, final: bool, cleared: int,
                                          flagged: bool) -> None:
    scan = policy.scan([Window(text, 4, final)])[0]
    assert (scan.cleared, scan.result.flagged) == (cleared, flagged)


@pytest.mark.parametrize(("text", "message"), [
    ('[harassment]\nwords = ["a"]\n[harasment]\nwords = ["b"]\n', "line 3: unknown category 'harasment'"),
    ('[hate]\nwords = ["x"]\npatterns = ["(unclosed"]\n', "line 3: [hate] invalid pattern '(unclosed'"),
    ('[hate]\nwords = ["x"]\npatterns = ["a*"]\n', "line 3: [hate] pattern 'a*' matches empty text"),
    ('[hate]\nword = ["x"]\n', "line 2: unknown key 'word' in [hate]"),
    ('[hate]\nwords = "x"\n', "line 2: [hate] words must be a list of strings"),
    ('[hate]\nwords = ["ok", " "]\n', "line 2: [hate] words has an empty entry"),
    ('[hate\nwords = ["x"]\n', "invalid TOML"),
    ("", "no categories defined"),
])
def test_invalid_files_name_the_line(text: str, message: str) -> None:
    with pytest.raises(RulesError, match=None) as info:
        parse_rules(text, "rules.toml")
    assert message in str(info.value) and str(info.value).startswith("rules.toml")


def test_invalid_toml_names_the_line() -> None:
    with pytest.raises(RulesError, match=r"^rules.toml line 2: invalid TOML"):
        parse_rules('[hate]\nwords = [x]\n', "rules.toml")
    with pytest.raises(RulesError, match=r"^rules.toml line 2: invalid TOML"):
        parse_rules('[hate]\nwords = ["x"\n', "rules.toml")


def test_from_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    policy = RulesPolicy.from_file(path)
    assert policy.model == "streamserve-rules:rules.toml"
    with pytest.raises(RulesError, match="cannot read"):
        RulesPolicy.from_file(tmp_path / "missing.toml")
