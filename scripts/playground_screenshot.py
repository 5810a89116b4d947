"""Take docs/images/playground.png: the playground mid-stream, in headless Chromium, on the default model.

Run from the repository root: ``.venv/bin/python scripts/playground_screenshot.py``. It starts its own
server on a free port (as the tests do), runs the page's compare experiment, then asks a question and
saves the screenshot while the answer is still streaming.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium.webdriver.common.by import By  # noqa: E402
from tests.e2e.browser import chromium, wait_for  # noqa: E402
from tests.serverproc import running_server  # noqa: E402

OUT = ROOT / "docs" / "images" / "playground.png"
QUESTION = "Give me three tips for writing clear Python, as a Markdown list with a short title."


def set_field(driver: object, field_id: str, value: object) -> None:
    field = driver.find_element(By.ID, field_id)  # type: ignore[attr-defined]
    field.clear()
    field.send_keys(str(value))


def main() -> None:
    with running_server() as server, chromium() as driver:
        driver.set_window_size(1400, 1000)
        driver.get(server.url + "/")
        wait_for(driver, lambda d: d.execute_script("return document.body.dataset.ready === 'true'"), 60, "no page")
        set_field(driver, "system", "You are a concise assistant.")
        set_field(driver, "temperature", 0)
        set_field(driver, "max_tokens", 80)
        driver.find_element(By.ID, "compare").click()
        wait_for(driver, lambda d: d.find_element(By.ID, "compare-result").get_attribute("data-state") == "done",
                 180, "the comparison did not finish")
        set_field(driver, "max_tokens", 300)
        driver.find_element(By.ID, "prompt").send_keys(QUESTION)
        driver.find_element(By.ID, "send").click()
        wait_for(driver, lambda d: d.execute_script(
            "const t = document.querySelector('#transcript article.assistant');"
            "return t && t.dataset.status === 'streaming' && t.querySelector('.answer-text').textContent.length > 160"),
            180, "the answer did not stream", poll=0.01)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(OUT))
        print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
