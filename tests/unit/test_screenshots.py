"""`make screenshots`: without Chromium it says how to install it, and the pictures go
to var/screenshots unless the docs' own are asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import screenshots


def test_the_pictures_go_to_var_unless_the_docs_are_updated() -> None:
    assert screenshots.output_folder(None, update_docs=False) == Path("var/screenshots")
    assert screenshots.output_folder(None, update_docs=True) == Path("docs/images")
    assert screenshots.output_folder(Path("elsewhere"), update_docs=True) == Path("elsewhere")


def test_without_chromium_it_names_the_install_command_instead_of_a_traceback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    def no_chromium() -> str:
        pytest.fail("Chromium is not installed; run: deploy/local/browser.sh install")

    monkeypatch.setattr(screenshots, "chromium_path", no_chromium)

    with pytest.raises(SystemExit) as stopped:
        screenshots.main(["--out", str(tmp_path / "shots")])

    assert stopped.value.code == "Chromium is not installed; run: deploy/local/browser.sh install"
    assert not (tmp_path / "shots").exists()


def test_with_chromium_nothing_is_missing() -> None:
    assert screenshots.browser_missing() is None  # Debian's, as deploy/local/browser.sh installs
