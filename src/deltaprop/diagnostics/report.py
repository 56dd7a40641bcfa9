"""A training run in one self-contained HTML file: curves, diagnostics, test results, the
network drawn as layers, and one step explained with the lecture's equations.

Everything is inside the file (pictures as PNG data, the network as inline SVG, no
script, no fonts or styles fetched), so it opens offline and can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import math

import numpy as np

from ..io.files import atomic_write
from .explain import CSS, html_body, text_html
from .health import diagnose
from .plotting import plot_confusion_matrix, plot_learning_curves, plot_residuals
from .trace import trace

__all__ = ["write_report"]

_REPORT_CSS = """table.k{border-collapse:collapse;margin:.5rem 0}table.k td{padding:.15rem .8rem;border-bottom:1px solid #eee}
table.k td:first-child{color:#555}img{max-width:100%;height:auto}figure{margin:1rem 0}
figcaption{color:#555;font-size:.9rem}.finding{color:#a33}.ok{color:#373}"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def architecture_svg(net) -> str:
    """The network as a row of layers: a box per layer (height growing with its width), the
    weight matrix W[l] with its shape on each arrow."""
    L, step, top = net.n_layers, 170, 24
    heights = [40 + 25 * math.log2(1 + d) for d in net.sizes]
    H = int(max(heights) + 2 * top + 20)
    parts = [f'<svg role="img" width="{step * L + 140}" height="{H}" '
             f'viewBox="0 0 {step * L + 140} {H}" font-family="Georgia,serif" font-size="13">',
             "<title>the network's layers</title>"]
    names = ["input"] + net.activation_names + [net.likelihood.name]
    for l, (d, h) in enumerate(zip(net.sizes, heights)):
        x, y = 20 + l * step, (H - h) / 2
        fill = "#e8eef8" if 0 < l < L else ("#eee" if l == 0 else "#f8ece8")
        parts.append(f'<rect x="{x}" y="{y:.0f}" width="100" height="{h:.0f}" rx="8" fill="{fill}" stroke="#456"/>')
        parts.append(f'<text x="{x + 50}" y="{H / 2 - 4:.0f}" text-anchor="middle">{d} units</text>')
        parts.append(f'<text x="{x + 50}" y="{H / 2 + 14:.0f}" text-anchor="middle" fill="#555">'
                     f'{html.escape(names[l])}</text>')
        label = "h[0] = x" if l == 0 else (f"h[{l}]" if l < L else "o")
        parts.append(f'<text x="{x + 50}" y="{y - 6:.0f}" text-anchor="middle" font-style="italic">{label}</text>')
        if l < L:
            r, c = net.shapes[l]
            x0, x1 = x + 102, x + step - 2
            parts.append(f'<line x1="{x0}" y1="{H / 2:.0f}" x2="{x1 - 6}" y2="{H / 2:.0f}" stroke="#456" '
                         'stroke-width="2"/>')
            parts.append(f'<polygon points="{x1},{H / 2:.0f} {x1 - 8},{H / 2 - 5:.0f} {x1 - 8},{H / 2 + 5:.0f}" '
                         'fill="#456"/>')
            parts.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{H / 2 - 8:.0f}" text-anchor="middle" '
                         f'font-style="italic">W[{l + 1}]</text>')
            parts.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{H / 2 + 20:.0f}" text-anchor="middle" fill="#555" '
                         f'font-size="11">{r} x {c}</text>')
    parts.append("</svg>")
    return "".join(parts)


def write_report(path, model, history, X_test, y_test, *, title: str = "deltaprop training report",
                 facts: dict | None = None, sample: int = 0) -> None:
    """Write the report of a finished run to ``path`` (atomically).

    Parameters
    ----------
    model : Model
        The trained model.
    history : History
        The run's history (with ``layers`` when diagnostics were on).
    X_test, y_test : array-like
        Held-out rows and their targets, raw as the model takes them.
    title : str
    facts : dict, optional
        Lines for the summary table (data, optimizer, time...).
    sample : int
        The test row whose update step is explained.
    """
    net = model.network
    X_test, y_test = np.asarray(X_test), np.asarray(y_test)
    score = model.score(X_test, y_test)
    classification = model.task == "classification"
    rows = {"network": f"{'-'.join(map(str, net.sizes))} ({', '.join(sorted(set(net.activation_names))) or 'none'}, "
                       f"{net.likelihood.name}), {net.n_params:,} parameters",
            **(facts or {}), "epochs": f"{history.epochs} ({history.stop_reason})",
            f"test {'accuracy' if classification else 'R²'}": f"{score:.4f} on {len(X_test)} samples"}
    curves = plot_learning_curves(history, None, title="")
    if classification and model.classes is not None:
        from sklearn.metrics import confusion_matrix

        cm = confusion_matrix(y_test, model.predict(X_test), labels=model.classes)
        results = plot_confusion_matrix(cm, [str(c) for c in model.classes], None)
        results_caption = "Confusion matrix on the test rows (rows: true class, columns: predicted)."
    elif classification:
        results, results_caption = None, ""
    else:
        results = plot_residuals(y_test, model.predict(X_test), None, title="test rows")
        results_caption = "Predicted against true targets on the test rows, and the residuals."
    findings = diagnose(history, net)
    if history.layers:
        verdict = ("".join(f'<li class="finding">{text_html(f)}</li>' for f in findings)
                   or '<li class="ok">Nothing looks wrong: gradients, update sizes, dead and saturated units are '
                      "within the usual ranges, the run converged and it fits its training rows.</li>")
        diagnostics = f"<h2>Diagnostics</h2><ul>{verdict}</ul>"
    else:
        diagnostics = "<p>Diagnostics were off (train with <code>--diagnostics</code> to see them).</p>"
    step = trace(model, X_test[sample], y_test[sample], learning_rate=0.01)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        '<table class="k">' + "".join(f"<tr><td>{html.escape(k)}</td><td>{text_html(str(v))}</td></tr>"
                                      for k, v in rows.items()) + "</table>",
        "<h2>The network</h2>", architecture_svg(net),
        "<p>Each arrow is one matrix W[l], the bias as its last row (eq. 11); a layer computes "
        "z[l] = W[l]<sup>⊤</sup> h[l-1] and h[l] = φ(z[l]) (eq. 3).</p>",
        "<h2>Learning curves</h2>",
        f"<figure>{_img(curves, 'learning curves')}<figcaption>The criterion J (eq. 1) per epoch on the "
        "training and validation data, the validation metric, and the learning rate μ of the update (eq. 10)"
        + ("; below, per layer: the gradient norm ||∇J|| (eq. 9), the weight norm, the size of one update "
          "relative to the weights, and the dead or saturated units." if history.layers else ".")
        + "</figcaption></figure>", diagnostics,
        "<h2>Test results</h2>",
        (f"<figure>{_img(results, 'test results')}<figcaption>{results_caption}</figcaption></figure>"
         if results is not None else ""),
        f"<h2>One step explained: test row {sample}</h2>",
        "<p>The update this sample would make with μ = 0.01, equation by equation.</p>",
        '<div class="step">' + html_body(step, level=3) + "</div>",
    ]
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{CSS}\n{_REPORT_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
    atomic_write(path, lambda f: f.write(page.encode()))
