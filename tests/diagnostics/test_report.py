"""The HTML report and the HTML explanation, opened in headless Chromium (Debian's package,
which .ci/run installs): no console errors, no network requests, a page that is not blank."""

import os
import re
import shutil

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.diagnostics.report import architecture_svg, write_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def open_in_chromium(path, screenshot):
    """(console errors, requests that left the file, the page's text, images that did not load)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if CHROMIUM is None or sync_playwright is None:
        if os.environ.get("DELTAPROP_BROWSER_TESTS") == "1":  # CI installs both: never skipped there
            pytest.fail("Chromium or playwright is missing, and DELTAPROP_BROWSER_TESTS=1 requires them")
        pytest.skip("needs Debian's chromium and the playwright package (.ci/run installs both)")
    errors, requests = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1400})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri(), wait_until="load")
            page.screenshot(path=str(screenshot), full_page=True)
            text = page.inner_text("body")
            broken = page.evaluate("Array.from(document.images).filter(i => !i.complete || !i.naturalWidth).length")
        finally:
            browser.close()
    return errors, [u for u in requests if not u.startswith(("file:", "data:"))], text, broken


def assert_not_blank(png):
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("L"), dtype=float)
    assert pixels.shape[0] > 400 and pixels.std() > 10
    assert np.mean(pixels < 200) > 0.01  # something is drawn on the white page


@pytest.fixture(scope="module")
def trained(iris):
    X, y = iris
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    model, state = dp.fit(X[::2], labels[::2], hidden=[8, 6], epochs=300, seed=0, diagnostics=True,
                          optimizer=dp.Adam(learning_rate=0.01), validation=0.2, early_stopping=10)
    return model, state.history, X[1::2], labels[1::2]


def test_report_is_self_contained_and_renders(trained, tmp_path):
    model, history, Xt, yt = trained
    path = tmp_path / "report.html"
    write_report(path, model, history, Xt, yt, title="iris report", facts={"data": "iris"}, sample=3)
    page = path.read_text()
    for fetch in ("http://", "https://", "<script", "<link", "@import", "url("):
        assert fetch not in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == 2  # curves + confusion matrix
    assert "<svg" in page and "W[3]" in page and "(eq. 8)" in page and "Nothing looks wrong" in page
    assert page.count("<h1>") == 1 and "<h3>One step of backpropagation" in page  # the step is a section
    errors, requests, text, broken = open_in_chromium(path, tmp_path / "report.png")
    assert errors == [] and requests == [] and broken == 0
    assert "One step explained: test row 3" in text and "test accuracy" in text and "Diagnostics" in text
    assert_not_blank(tmp_path / "report.png")


def test_explanation_page_renders(trained, tmp_path):
    model, _, Xt, yt = trained
    path = tmp_path / "step.html"
    path.write_text(dp.trace(model, Xt[0], yt[0]).explain("html"))
    errors, requests, text, broken = open_in_chromium(path, tmp_path / "step.png")
    assert errors == [] and requests == [] and broken == 0
    assert "(eq. 12)" in text and "J after the step" in text and "δ" in text
    assert_not_blank(tmp_path / "step.png")


def test_regression_report_has_residuals_and_no_diagnostics_when_off(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ [1.0, -2.0, 0.5] + 0.1 * rng.normal(size=200)
    model, state = dp.fit(X[:150], y[:150], hidden=[8], epochs=5, seed=0)
    write_report(tmp_path / "r.html", model, state.history, X[150:], y[150:])
    page = (tmp_path / "r.html").read_text()
    assert "residuals" in page and "test R²" in page and "Diagnostics were off" in page


def test_architecture_is_drawn_layer_by_layer():
    svg = architecture_svg(dp.Network([784, 256, 128, 10], seed=0))
    assert svg.count("<rect") == 4 and "785 x 256" in svg and "129 x 10" in svg and "categorical" in svg
