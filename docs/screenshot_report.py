"""Make docs/report.png, the README's picture of the HTML report: runs
`deltaprop train --diagnostics --report report.html` in a temporary folder and takes a
screenshot of the page's top in headless Chromium (Debian's package, driven by playwright).

    python docs/screenshot_report.py
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

OUT = Path(__file__).resolve().parent / "report.png"

with tempfile.TemporaryDirectory() as tmp:
    subprocess.run([sys.executable, "-m", "deltaprop", "train", "--diagnostics", "--report", "report.html",
                    "--plot", "", "--quiet"], cwd=tmp, check=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        page = browser.new_page(viewport={"width": 1000, "height": 1500})
        page.goto((Path(tmp) / "report.html").as_uri(), wait_until="load")
        page.screenshot(path=str(OUT))
        browser.close()
print(f"wrote {OUT}")
