"""The web UI in a real browser against the real stack: `processor serve` and the Checkout example
deployments as processes, headless Debian Chromium driven by Playwright.

The seed scenario through the UI: v1 fails at `ship` until the invocation pauses; v2 is registered;
in the browser the operator opens the list, opens the paused invocation, resumes it on `latest`
and watches it complete (the page refreshes itself while the invocation is in flight).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from tests.e2e.support import Daemon, register, send, wait_status
from tests.leader.e2e_support import CHECKOUT, DeploymentProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAIL_FAST = {"CHECKOUT_MAX_ATTEMPTS": "2", "CHECKOUT_INITIAL_INTERVAL": "50ms"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian chromium is not installed"),
]


@dataclass
class Stack:
    daemon: Daemon
    v1: DeploymentProcess
    v2: DeploymentProcess
    browser: Browser


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """The daemon, Checkout v1 and v2, and Chromium, all started at once (the slow parts)."""
    ledger = ["--ledger", str(tmp_path / "ledger")]
    daemon = Daemon(tmp_path, partitions=2)
    v1 = DeploymentProcess(CHECKOUT, ["--version", "v1", *ledger], tmp_path, FAIL_FAST)
    v2 = DeploymentProcess(CHECKOUT, ["--version", "v2", *ledger], tmp_path, FAIL_FAST)
    async with async_playwright() as playwright:
        try:
            browser, *_ = await asyncio.gather(
                playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS),
                daemon.start(),
                v1.start(),
                v2.start(),
            )
            yield Stack(daemon, v1, v2, browser)
            await browser.close()
        finally:
            daemon.kill()
            v1.stop()
            v2.stop()


async def test_resume_a_paused_invocation_on_latest_in_the_browser(
    stack: Stack, tmp_path: Path
) -> None:
    daemon, browser = stack.daemon, stack.browser
    async with aiohttp.ClientSession() as http:
        await register(http, daemon, stack.v1.uri)
        inv = await send(http, daemon, "Checkout/process", {"id": "o-1"})
        paused = await wait_status(http, daemon, inv, "paused")
        v1_id = paused["pinned_deployment"]
        v2_id = await register(http, daemon, stack.v2.uri)

        page: Page = await browser.new_page(viewport={"width": 1440, "height": 900})
        page.set_default_timeout(15_000)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))

        # The list: `/` leads to it; the paused invocation is there and paused stands out.
        await page.goto(daemon.admin_url + "/")
        assert page.url == daemon.admin_url + "/ui/"
        row = page.locator("tr", has=page.locator(f'a:text-is("{inv}")'))
        await expect(row.locator(".badge")).to_have_text("paused")
        await expect(page.locator(".count.st-paused")).to_have_class("count st-paused alert")
        await expect(page.locator('#bulk button[data-verb="resume"]')).to_be_disabled()
        await row.locator('input[name="id"]').check()
        await expect(page.locator("#selection")).to_have_text("1 selected (1 paused)")
        await expect(page.locator('#bulk button[data-verb="resume"]')).to_be_enabled()
        await page.screenshot(path=str(tmp_path / "list.png"), full_page=True)

        # The invocation: why it paused, and the resume choice.
        await row.locator(f'a:text-is("{inv}")').click()
        await expect(page.locator("#status")).to_have_text("paused")
        await expect(page.locator(".failure .message")).to_contain_text("v1 bug")
        await expect(page.locator("#btn-pause")).to_be_disabled()
        await page.select_option("#resume-deployment", "latest")
        await page.click("#btn-resume")

        await expect(page.locator("#flash")).to_contain_text("Resume succeeded (200)")
        await expect(page.locator("#status")).to_have_text("completed", timeout=20_000)
        await expect(page.locator("h1 .badge")).to_have_text("completed")
        await expect(page.locator("#btn-purge")).to_be_enabled()
        await page.screenshot(path=str(tmp_path / "resumed.png"), full_page=True)
        assert errors == []

        done = await wait_status(http, daemon, inv, "completed")
        assert done["pinned_deployment"] == v2_id != v1_id
        assert done["result"] is not None and "failure" not in done["result"]
    assert (tmp_path / "resumed.png").stat().st_size > 10_000
