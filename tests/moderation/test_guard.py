"""The guard policy's prompt and its strict verdict parsing (the engine path is proven end to end in e2e)."""

from __future__ import annotations

import pytest

from streamserve.moderation.guard import GUARD_CATEGORIES, GuardVerdictError, guard_task, parse_categories


def test_task_is_llama_guard_3() -> None:
    task = guard_task("hello there")
    assert task.startswith("Task: Check if there is unsafe content in 'User' messages")
    assert "S1: Violent Crimes.\nS2: Non-Violent Crimes." in task and "S14: Code Interpreter Abuse." in task
    assert "<BEGIN CONVERSATION>\n\nUser: hello there\n\n<END CONVERSATION>" in task
    assert task.endswith("a second line must include a comma-separated list of violated categories.")


@pytest.mark.parametrize(("line", "codes"), [("S1", ("S1",)), ("S2,S10", ("S2", "S10")), (" S11, S3 ", ("S11", "S3"))])
def test_category_lines(line: str, codes: tuple[str, ...]) -> None:
    assert parse_categories(line) == codes


@pytest.mark.parametrize("line", ["", "S15", "S1;S2", "Violent Crimes", "S1, and more", "s1"])
def test_anything_else_is_an_error(line: str) -> None:
    with pytest.raises(GuardVerdictError):
        parse_categories(line)


def test_every_code_maps_to_openai_categories() -> None:
    from streamserve.moderation import CATEGORIES

    assert len(GUARD_CATEGORIES) == 14
    assert all(mapped and set(mapped) <= set(CATEGORIES) for _, mapped in GUARD_CATEGORIES.values())
