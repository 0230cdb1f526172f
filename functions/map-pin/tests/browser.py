"""Opens the map page in Debian's headless Chromium and waits for a pin.

Usage: browser.py PAGE_URL INCIDENT_ID SCREENSHOT [CLEARED_ID]
Prints `ready` once the page's live stream is connected, then
`pin visible without reload` when the incident's entry appears while the
page's own marker (set at load) is still there (and CLEARED_ID, a closed
incident stored before the page opened, is listed as cleared), then takes
a screenshot and
prints `geography drawn: ...` when the offline map drew land, coastline and
sea pixels (counted in the screenshot), province boundaries, at least
three city labels, and axes with at least two labels each way of which none
overlaps another (readable axes). Exits non-zero otherwise.
"""
import sys

import cv2
import numpy as np

from playwright.sync_api import sync_playwright


def main() -> int:
    url, incident, screenshot = sys.argv[1], sys.argv[2], sys.argv[3]
    cleared = sys.argv[4] if len(sys.argv) > 4 else None
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        page.evaluate("window.__loadedOnce = true")
        page.wait_for_selector("#live.on", timeout=15000)
        print("ready", flush=True)
        page.wait_for_selector(f'li[data-incident="{incident}"]', timeout=20000)
        if not page.evaluate("window.__loadedOnce === true"):
            print("the page reloaded", flush=True)
            return 1
        if cleared and page.locator(f'li[data-incident="{cleared}"][data-state="closed"]').count() != 1:
            print(f"{cleared} is not listed as cleared", flush=True)
            return 1
        print("pin visible without reload", flush=True)
        page.wait_for_timeout(300)
        drawn = page.evaluate("window.__mapDrawn")
        page.screenshot(path=screenshot)
        browser.close()
    image = cv2.imread(screenshot)
    # The map canvas is the left part (the list is 340 px wide on the right).
    canvas = image[:, : image.shape[1] - 340]
    coast = np.array([165, 110, 47])  # #2f6ea5 in BGR
    sea = np.array([243, 226, 207])  # #cfe2f3
    near = lambda colour: int((np.abs(canvas.astype(int) - colour).max(axis=2) <= 24).sum())
    coast_pixels, sea_pixels = near(coast), near(sea)
    axes = (drawn or {}).get("axes") or {}
    if (not drawn or drawn["land"] == 0 or drawn.get("provinces", 0) == 0 or drawn["cities"] < 3
            or coast_pixels < 200 or sea_pixels < 1000):
        print(f"no geography drawn: {drawn}, {coast_pixels} coastline and {sea_pixels} sea pixels", flush=True)
        return 1
    if axes.get("lon", 0) < 2 or axes.get("lat", 0) < 2 or axes.get("overlaps", 1) != 0:
        print(f"unreadable axes: {axes}", flush=True)
        return 1
    print(f"geography drawn: {coast_pixels} coastline pixels, {sea_pixels} sea pixels, "
          f"{drawn['land']} land polygons, {drawn['provinces']} province lines, "
          f"{drawn['cities']} city labels, axes {axes['lon']} x {axes['lat']} labels, no overlap", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
