"""The console's pages as docs/console.md shows them, made by Debian's Chromium from a
running `make run` with `make demo`'s portfolio; and how long the account page takes
to draw its year of history.

They go into var/screenshots, or into docs/images with --update-docs
(`make screenshots UPDATE_DOCS=1`), the pictures docs/console.md shows.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.support.browser import chromium, chromium_path

SCRATCH = Path("var/screenshots")
DOCS_IMAGES = Path("docs/images")
PAGES = ("sign-in", "portfolio", "accounts", "account", "alerts", "backtest")
# The most the account page fetches (5,000 changes, a year of a busy account), drawn
# on the page as its health chart draws them: milliseconds until the next frame after.
LARGEST = """async () => {
  const n = 5000, t = [], health = [], start = Date.now() / 1000 - 365 * 86400;
  for (let i = 0; i < n; i++) { t.push(start + i * 6307); health.push(40 + (i * 37) % 60); }
  const holder = document.createElement("div");
  document.body.appendChild(holder);
  const began = performance.now();
  new uPlot({ width: 1200, height: 260, scales: { y: { range: [0, 100] } },
    series: [{}, { stroke: "#1f4e79", paths: uPlot.paths.stepped({ align: 1 }) }] },
    [t, health], holder);
  await new Promise((drawn) => requestAnimationFrame(() => requestAnimationFrame(drawn)));
  const took = performance.now() - began;  // until the frame after it was painted
  holder.remove();
  return Math.round(took * 10) / 10;
}"""


async def shoot(url: str, out: Path) -> dict[str, float]:
    async with chromium() as browser:
        page = await browser.new_page(viewport={"width": 1280, "height": 900})
        await page.goto(url)
        await _save(page, out, "sign-in", whole=False)
        await page.get_by_label("Your name").fill("Kim")
        await page.get_by_label("Your API key").fill("demo")  # make run checks no keys
        await page.get_by_role("button", name="Sign in").click()
        await _save(page, out, "portfolio")
        await page.goto(f"{url}/accounts?sort=change")
        await _save(page, out, "accounts", whole=False)
        await page.goto(url)
        first = page.get_by_test_id("attention").get_by_role("link").first
        account_url = f"{url}{await first.get_attribute('href')}?range=1y"
        began = time.perf_counter()
        await page.goto(account_url)
        chart = page.get_by_test_id("health-chart")
        await expect(chart).to_have_attribute("data-drawn", "true")
        await expect(page.get_by_test_id("standing-chart")).to_have_attribute("data-drawn", "true")
        shown = time.perf_counter() - began
        timing = {
            "points": float(await chart.get_attribute("data-points") or 0),
            "health_chart_draw_ms": float(await chart.get_attribute("data-draw-ms") or 0),
            "page_shown_ms": round(shown * 1000, 1),
        }
        timing["largest_chart_draw_ms"] = await page.evaluate(LARGEST)
        await _save(page, out, "account")
        await page.goto(f"{url}/alerts")
        await _save(page, out, "alerts", whole=False)  # a long list: its first screen
        await page.goto(f"{url}/backtest")
        await _save(page, out, "backtest")
    return timing


async def _save(page: Page, out: Path, name: str, whole: bool = True) -> None:
    await page.wait_for_load_state("networkidle")
    await page.screenshot(path=out / f"console-{name}.png", full_page=whole)


def browser_missing() -> str | None:
    """What to do when there is no Chromium to drive; None when there is."""
    try:
        chromium_path()
    except pytest.fail.Exception as missing:
        return str(missing.msg)
    return None


def output_folder(out: Path | None, update_docs: bool) -> Path:
    """Where the pictures go: ``out``, else docs/images when asked to update the docs,
    else var/screenshots (the docs' pictures change only on purpose)."""
    if out is not None:
        return out
    return DOCS_IMAGES if update_docs else SCRATCH


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8004")
    parser.add_argument("--out", type=Path, help=f"the folder (default: {SCRATCH})")
    parser.add_argument(
        "--update-docs", action="store_true", help=f"write into {DOCS_IMAGES}, for docs/console.md"
    )
    args = parser.parse_args(argv)
    missing = browser_missing()
    if missing is not None:
        raise SystemExit(missing)
    out = output_folder(args.out, args.update_docs)
    out.mkdir(parents=True, exist_ok=True)
    timing = asyncio.run(shoot(args.url, out))
    print(f"screenshots of {', '.join(PAGES)} in {out}; year of history: {timing}")


if __name__ == "__main__":
    main()
