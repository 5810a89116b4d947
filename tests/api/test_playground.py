"""The playground's routes and assets, without a model: the app is built but its lifespan never runs.

What the page does in a browser is proven in ``tests/e2e/test_playground.py``; here: what is served,
with which headers, that everything it refers to ships in the package, that ``--no-playground``
removes it, and that the wheel really carries the assets.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from streamserve.api.app import create_app
from streamserve.api.playground import STATIC_DIR
from streamserve.cli import build_parser
from streamserve.config import ServerConfig
from streamserve.serve_args import server_config

ROOT = Path(__file__).resolve().parents[2]
ASSETS = sorted(p for p in STATIC_DIR.rglob("*") if p.is_file())
SCRIPTS = [p for p in ASSETS if p.suffix == ".js"]


def client(playground: bool = True) -> TestClient:
    return TestClient(create_app(ServerConfig(model="unused", playground=playground), ("m",)))


@pytest.mark.parametrize("path", ["/", "/playground"])
def test_the_page_is_served_with_a_strict_content_security_policy(path: str) -> None:
    response = client().get(path)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "<title>streamserve playground</title>" in response.text
    assert client().head(path).status_code == 200


def test_every_asset_the_page_names_is_served_from_the_package() -> None:
    http = client()
    page = http.get("/").text
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs and all(ref.startswith("playground/assets/") for ref in refs), refs
    imports = {
        f"playground/assets/js/{name}"
        for script in SCRIPTS for name in re.findall(r'from "\./([\w-]+\.js)"', script.read_text())
    }
    for ref in {*refs, *imports}:
        response = http.get("/" + ref)
        assert response.status_code == 200, ref
        if ref.endswith(".js"):
            assert response.headers["content-type"].split(";")[0] in ("text/javascript", "application/javascript")


def test_no_asset_refers_outside_the_server() -> None:
    for asset in ASSETS:
        text = asset.read_text()
        code = re.sub(r"^\s*//.*$", "", text, flags=re.MULTILINE)  # comments may cite URLs
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", code), asset.name
        assert not re.search(r"(fetch|import)\(\s*[\"'`](https?:)?//", code), asset.name
        assert "@import" not in code and "url(http" not in code, asset.name


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_parse_strings_as_html_or_code(script: Path) -> None:
    """The page's one rendering rule: model output becomes text nodes, never markup or code."""
    code = script.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function",
                 "DOMParser", "createContextualFragment", "srcdoc"):
        assert sink not in code, f"{script.name} uses {sink}"


def test_no_playground_serves_nothing_at_those_paths() -> None:
    http = client(playground=False)
    for path in ("/", "/playground", "/playground/assets/js/main.js"):
        assert http.get(path).status_code == 404


def test_the_flag_reaches_the_config() -> None:
    config = server_config(build_parser().parse_args(["serve"]))
    assert config.playground is True
    config = server_config(build_parser().parse_args(["serve", "--no-playground"]))
    assert config.playground is False


def test_a_built_wheel_ships_every_asset(tmp_path: Path) -> None:
    """A non-editable build (what ``pip install .`` installs) carries the page and all its assets.

    It builds from a copy, so the build leaves nothing in the working tree.
    """
    project = tmp_path / "project"
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(project)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    (wheel,) = tmp_path.glob("streamserve-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for asset in ASSETS:
        assert "streamserve/api/static/" + asset.relative_to(STATIC_DIR).as_posix() in names, asset.name
