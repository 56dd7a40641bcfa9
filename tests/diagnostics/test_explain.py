import math
import re

import numpy as np
import pytest

import deltaprop as dp
from deltaprop.diagnostics.explain import CSS, latex_html, text_html
from deltaprop.diagnostics.trace import explain_step


def _lecture_net():
    net = dp.Network([2, 2, 1], activation="sigmoid", likelihood="bernoulli", dtype="float64")
    net.W[1][...] = [[0.1, 0.3], [0.2, 0.4], [0.5, -0.5]]
    net.W[2][...] = [[0.7], [-0.6], [0.05]]
    return net


def test_explain_shows_the_lecture_step_and_lowers_the_loss():
    net = _lecture_net()
    text = explain_step(net, [1.0, 2.0], 1, learning_rate=0.5)
    for eq in ("eq. 1", "eq. 3", "eq. 5", "eq. 6", "eq. 8", "eq. 9", "eq. 10", "eq. 11", "eq. 12", "PASSED"):
        assert eq in text
    J = float(re.search(r"^J = ([0-9.]+)$", text, re.M).group(1))
    assert J == pytest.approx(-math.log(0.5434767310649931), abs=1e-6)
    after = float(re.search(r"J after the step = ([0-9.]+)", text).group(1))
    assert after < J
    assert net.W[2][0, 0] == 0.7  # the caller's network is not changed


def _printed_arrays(text: str) -> dict:
    """Every array the text prints, by its label: vectors on one line, matrices on the following ones."""
    found, lines = {}, text.splitlines()
    for k, line in enumerate(lines):
        m = re.match(r"^  (\S.*) = \[([^\]]*)\]$", line)
        if m:
            found[m.group(1)] = np.array([float(v) for v in m.group(2).split()])
            continue
        m = re.match(r"^  (\S.*?) =$", line)
        if m:
            rows = []
            for row in lines[k + 1:]:
                if not row.startswith("    ["):
                    break
                rows.append([float(v) for v in row.strip()[1:-1].split()])
            found[m.group(1)] = np.array(rows)
    return found


@pytest.mark.parametrize("likelihood, y", [("bernoulli", 1), ("categorical", 2), ("gaussian", [0.5, -1.0, 2.0]),
                                           ("tanh+squared_error", [0.5, -0.2, 0.1])])
def test_every_number_explain_prints_is_the_traces(likelihood, y):
    sizes = [2, 2, 1] if likelihood == "bernoulli" else [3, 4, 3, 3]
    net = dp.Network(sizes, activation="tanh", likelihood=likelihood, seed=4)
    x = np.linspace(-1, 1, sizes[0])
    t = dp.trace(net, x, y, learning_rate=0.2)
    printed = _printed_arrays(t.explain("text"))
    L = t.n_layers
    expected = {"o = output of the " + likelihood + " likelihood": t.o[0], "grad_o J": t.grad_o[0],
                f"delta[{L}] by the general rule": t.delta_general[0], "h[0] = [x, 1]": t.layer(1).h_prev[0]}
    if t.delta_shortcut is not None:
        expected[f"delta[{L}] = o - y"] = t.delta_shortcut[0]
    for lay in t.layers:
        l = lay.l
        expected[f"W[{l}]"] = lay.W
        expected[f"z[{l}] = W[{l}]^T h[{l - 1}]"] = lay.z[0]
        expected[f"grad W[{l}]"] = lay.G
        expected[f"W[{l}] after the step"] = lay.W_after
        if l < L:
            expected[f"delta[{l}]"] = lay.delta[0]
            expected[f"phi'(z[{l}]) (tanh)"] = lay.phi_prime[0]
    for name, value in expected.items():
        assert name in printed, name
        np.testing.assert_allclose(printed[name], value, rtol=1e-5, atol=1e-9, err_msg=name)
    assert len(printed) >= len(expected)


@pytest.mark.parametrize("fmt", ["text", "markdown", "html"])
def test_equations_appear_in_the_lectures_order(fmt):
    net = dp.Network([3, 4, 4, 2], activation="tanh", likelihood="categorical", seed=0)
    out = dp.trace(net, np.ones(3), 1).explain(fmt)
    first = {}
    for m in re.finditer(r"\(eq\. (\d+)\)|\\tag\{(\d+)\}", out):  # (markdown numbers equations with \tag)
        first.setdefault(int(m.group(1) or m.group(2)), m.start())
    assert sorted(first) == [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]
    assert sorted(first, key=first.get) == sorted(first)


def test_markdown_writes_latex_and_html_is_self_contained():
    t = dp.trace(_lecture_net(), [1.0, 2.0], 1, 0.5)
    md = t._repr_markdown_()
    assert md.startswith("# One step") and r"\tag{8}" in md and r"\begin{bmatrix}" in md
    page = t.explain("html")
    assert page.startswith("<!DOCTYPE html>")
    cell = t._repr_html_()  # for Jupyter: one element whose style reaches nothing outside it
    assert cell.startswith('<div class="dp-step"><style>') and "<body" not in cell
    style = cell[cell.index("<style>") + 7:cell.index("</style>")]
    assert all(rule.startswith(".dp-step") for rule in re.findall(r"(?:^|\})([^{}]+)\{", style))
    for fetch in ("http://", "https://", "<script", "src=", "<link"):
        assert fetch not in page
    assert "<b>δ</b><sup>(2)</sup>" in page and "0.543477" in page


def test_wide_layers_are_summarised_with_chosen_units_in_full():
    net = dp.Network([30, 40, 12], seed=0)
    t = dp.trace(net, np.linspace(-1, 1, 30), 5, check=False)
    text = t.explain(units=[7, 39])
    z = t.layer(1).z[0]
    assert f"z[1] = W[1]^T h[0]: shape (40,): min {z.min():.6g}" in text
    assert f"unit 39: {z[39]:.6g}" in text and f"unit 7: {z[7]:.6g}" in text
    W = t.layer(1).W
    assert f"unit 39: bias {W[-1, 39]:.6g}, weight norm {np.linalg.norm(W[:-1, 39]):.6g}" in text
    default = t.explain()  # the three units of largest |delta| by default
    top = np.argsort(-np.abs(t.layer(1).delta[0]))[:3]
    for u in top:
        assert f"unit {u}: {z[u]:.6g}" in default


def test_latex_subset_to_html():
    assert latex_html(r"\frac{dJ}{do_j}") == '<span class="frac"><span>dJ</span><span>do<sub>j</sub></span></span>'
    assert latex_html(r"\mathbf{W}^{(2)\top}") == "<b>W</b><sup>(2)⊤</sup>"
    assert latex_html(r"a < b") == "a &lt; b"


def test_numbers_never_wrap_in_html():
    # a browser may break a line after any hyphen: 9.153e- / 07 once came out in two lines
    assert latex_html("J = 9.153e-07 - 0.5") == 'J = <span class="v">9.153e-07</span>  −  0.5'
    assert text_html("min -0.5, max 9.153e-07, h-1 & 3") == \
        'min <span class="v">-0.5</span>, max <span class="v">9.153e-07</span>, h-1 &amp; 3'
    assert ".v{white-space:nowrap}" in CSS and "text-align:right;white-space:nowrap" in CSS
    page = dp.trace(_lecture_net(), [1.0, 2.0], 1, 0.5).explain("html")
    bare = re.sub(r'<span class="v">[^<]*</span>|<table class="m">.*?</table>', "", page.split("</style>")[1])
    assert not re.search(r"\de-\d|(?<![\w.])-\d", re.sub(r"<[^>]+>", " ", bare)), "a signed number outside a span"


@pytest.mark.parametrize("bad", [{"format": "pdf"}, {"units": [-1]}, {"max_width": 0}])
def test_bad_display_arguments(bad):
    t = dp.trace(_lecture_net(), [1.0, 2.0], 1, 0.5)
    with pytest.raises(ValueError):
        t.explain(**bad)
