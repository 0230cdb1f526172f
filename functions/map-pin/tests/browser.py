"""Opens the map page in Debian's headless Chromium and waits for a pin.

Usage: browser.py PAGE_URL INCIDENT_ID
Prints `ready` once the page's live stream is connected, then
`pin visible without reload` when the incident's entry appears while the
page's own marker (set at load) is still there. Exits non-zero otherwise.
"""
import sys

from playwright.sync_api import sync_playwright


def main() -> int:
    url, incident = sys.argv[1], sys.argv[2]
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"],
        )
        page = browser.new_page()
        page.goto(url)
        page.evaluate("window.__loadedOnce = true")
        page.wait_for_selector("#live.on", timeout=15000)
        print("ready", flush=True)
        page.wait_for_selector(f'li[data-incident="{incident}"]', timeout=20000)
        if not page.evaluate("window.__loadedOnce === true"):
            print("the page reloaded", flush=True)
            return 1
        page.screenshot(path="/tmp/safecity-map-pin.png")
        print("pin visible without reload", flush=True)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
