"""Open a report in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright):
no console errors, no page errors, no request leaving the file (the report must work
offline), every chart an SVG that rendered with a real size and content, as many as
summary.json says. Saves a screenshot of the top of the page and of the first factor.
"""
import argparse
import json
import sys

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", required=True, help="folder with index.html and summary.json")
    ap.add_argument("--screenshot", required=True)
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--expect-compare", type=int, default=0,
                    help="the model comparison table (lgbm-train --compare) must render with this many model rows")
    a = ap.parse_args()
    want = json.load(open(f"{a.report}/summary.json"))["charts"]
    errors, requests = [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=a.chromium, args=ARGS)
        page = b.new_page(viewport={"width": 1300, "height": 1800})
        page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto(f"file://{a.report}/index.html")
        page.wait_for_load_state("load")
        # Open every factor's details, so every chart is laid out.
        page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
        stats = page.evaluate("""() => [...document.querySelectorAll('div.chart > svg')].map(s => {
            const r = s.getBoundingClientRect();
            return {w: r.width, h: r.height, shapes: s.querySelectorAll('path,polyline,rect,line,circle').length,
                    text: s.querySelectorAll('text').length};
        })""")
        # The comparison table as laid out: its model rows, visible with a real size.
        compare = page.evaluate("""() => {
            const h = document.getElementById('compare');
            if (!h) return null;
            let t = h.nextElementSibling;
            while (t && t.tagName !== 'TABLE') t = t.nextElementSibling;
            if (!t) return null;
            const r = t.getBoundingClientRect();
            return {rows: t.querySelectorAll('tr').length - 1, w: r.width, h: r.height,
                    models: [...t.querySelectorAll('tr td:first-child')].map(td => td.textContent)};
        }""")
        page.screenshot(path=a.screenshot)
        first = page.query_selector("details")
        if first:
            first.screenshot(path=a.screenshot.replace(".png", "-factor.png"))
        b.close()
    bad = [i for i, s in enumerate(stats) if not (s["w"] > 100 and s["h"] > 100 and s["shapes"] > 3 and s["text"] > 2)]
    print(f"{len(stats)} charts (summary.json says {want}), {len(bad)} empty, "
          f"{len(errors)} console/page errors, {len(requests)} network requests")
    fails = []
    if len(stats) != want:
        fails.append(f"{len(stats)} charts rendered, summary.json says {want}")
    if bad:
        fails.append(f"charts without size or content: {bad[:10]}")
    if a.expect_compare:
        print(f"model comparison: {compare}")
        if not compare or compare["rows"] != a.expect_compare or compare["w"] < 300 or compare["h"] < 20 * a.expect_compare:
            fails.append(f"the model comparison did not render with {a.expect_compare} rows: {compare}")
    fails += errors + [f"network request: {u}" for u in requests]
    if fails:
        print("\n".join(fails))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
