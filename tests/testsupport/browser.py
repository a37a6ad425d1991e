"""One Chromium per test process, shared by every module's ``browser`` fixture.

Playwright's sync API allows one running instance per thread, and each test module that imports
tests/dashboard/test_browser.py's ``browser`` fixture gets its own session-scoped instance of it
(pytest registers a fixture per module that holds it). So the launch itself is shared here: the
first fixture instance starts Playwright and Chromium, the last one to finish stops them.
"""

from __future__ import annotations

from typing import Any

_shared: dict[str, Any] = {"playwright": None, "browser": None, "users": 0}


def acquire(executable: str, args: list[str]) -> Any:
    """The process's Chromium, launched on first use."""
    if _shared["browser"] is None:
        from playwright.sync_api import sync_playwright

        playwright = sync_playwright().start()
        _shared["playwright"] = playwright
        _shared["browser"] = playwright.chromium.launch(executable_path=executable, args=args)
    _shared["users"] += 1
    return _shared["browser"]


def release() -> None:
    """One user done; the last one closes Chromium and stops Playwright."""
    _shared["users"] -= 1
    if _shared["users"] <= 0 and _shared["browser"] is not None:
        _shared["browser"].close()
        _shared["playwright"].stop()
        _shared.update(playwright=None, browser=None, users=0)
