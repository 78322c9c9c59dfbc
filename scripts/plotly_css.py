"""Write the global style rules plotly.js injects, collected in Chromium, for kizuna/web/static/plotly.css.

The pages' CSP refuses the <style> element plotly would create; served as a file with the id plotly looks for,
the same rules apply and plotly adds its own into that sheet. Rerun when the plotly package changes:

    .venv/bin/python scripts/plotly_css.py > kizuna/web/static/plotly.css
"""

from pathlib import Path

import plotly
from playwright.sync_api import sync_playwright

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
DRAW = "Plotly.newPlot('c', [{type: 'heatmap', z: [[1, 2], [3, 4]]}, {type: 'bar', x: [1], y: [2]}], {}, {})"
COLLECT = """() => {
  const out = [];
  for (const sheet of document.styleSheets) {
    const node = sheet.ownerNode;
    if (node && node.id && node.id.startsWith('plotly')) for (const rule of sheet.cssRules) out.push(rule.cssText);
  }
  return out.join('\\n');
}"""

js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text()
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
    page = browser.new_page()
    page.set_content("<html><body><div id=c></div></body></html>")
    page.add_script_tag(content=js)
    page.evaluate(DRAW)
    page.wait_for_timeout(500)
    css = page.evaluate(COLLECT)
    version = page.evaluate("Plotly.version")
    browser.close()
print(f"/* plotly.js {version} global styles, written by scripts/plotly_css.py (see there why). */")
print(css)
