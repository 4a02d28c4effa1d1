"""Headless Chromium for page tests: Debian's chromium driven by Playwright (no browser download ever).

The browser is found at /usr/bin/chromium; on a machine without it the tests install Debian's package
(``apt-get install chromium``, as root in CI) and fail with a clear message if that is impossible.
Chromium runs with the flags this closed network needs: without them it keeps trying Google's hosts.
"""

import os
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from pathlib import Path

import pytest
from playwright.async_api import BrowserContext, async_playwright

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
INSTALL_SECONDS = 600


def _apt_install(*packages: str) -> str:
    """Install Debian packages; returns what went wrong, or '' on success."""
    if shutil.which("apt-get") is None:
        return "apt-get is not available"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", *packages]):
            done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=INSTALL_SECONDS,
                                  check=False)
            if done.returncode != 0:
                return f"`{' '.join(command)}` exited {done.returncode}: {done.stderr.strip()[-800:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{exc.__class__.__name__}: {exc}"
    return ""


def _has_chinese_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, timeout=60, check=False)
    return bool(listed.stdout.strip())


@cache
def chromium_executable() -> Path:
    """Debian's chromium, installed on first use if missing; the test fails (never skips) if it cannot be."""
    if not CHROMIUM.exists():
        problem = _apt_install("chromium", "fonts-noto-cjk")
        if not CHROMIUM.exists():
            pytest.fail(f"headless Chromium is required for the dashboard page tests and {CHROMIUM} is missing; "
                        f"installing Debian's chromium failed ({problem or 'no binary after install'}). "
                        "Install it with: apt-get update && apt-get install -y chromium")
    if not _has_chinese_font():
        # Only the screenshot needs it (text assertions work without): try once, do not fail.
        _apt_install("fonts-noto-cjk")
    return CHROMIUM


@asynccontextmanager
async def chromium(user_data_dir: Path, *, locale: str = "zh-CN") -> AsyncIterator[BrowserContext]:
    """A fresh headless Chromium context (its own empty user-data dir) with a wall-screen sized viewport."""
    executable = chromium_executable()
    async with async_playwright() as playwright:
        context = await playwright.chromium.launch_persistent_context(
            str(user_data_dir), executable_path=str(executable), args=CHROMIUM_ARGS, headless=True,
            locale=locale, timezone_id="Asia/Shanghai", viewport={"width": 1600, "height": 1000})
        context.set_default_timeout(10_000)
        try:
            yield context
        finally:
            await context.close()


def artifact(name: str) -> Path:
    """A path in test-artifacts/ (git-ignored), created on demand."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name
