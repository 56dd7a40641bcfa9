"""One update step told as the lecture tells it, from a :class:`~deltaprop.diagnostics.trace.StepTrace`.

The story is built once, as a list of parts (headings, sentences, equations with
their lecture numbers, arrays of numbers), and written out as plain text, as
Markdown with LaTeX math, or as a self-contained HTML page (equations in HTML,
no script and nothing fetched: it reads offline). Its order is the lecture's:
the criterion (1), the forward composition (3), the chain rule for one output
weight (4)-(6), the output delta (7)-(8) by the general rule and by the o - y
shortcut, the gradient matrix (9), the update (10), the bias row (11)-(12), then
the same chain rule one layer down for every hidden layer, the gradient check,
and J after the step.

Layers wider than ``max_width`` are summarised (min, mean, max, norm) with a few
units shown in full: those given as ``units``, else the three whose delta is
largest in magnitude.
"""

from __future__ import annotations

import html
import re

import numpy as np

from ..validation import check_int

Array = np.ndarray
FORMATS = ("text", "markdown", "html")


# --- the story, as parts ------------------------------------------------------------------
class _Story:
    """What to say, in order: ("h", title), ("p", text), ("eq", number, latex, plain), ("a", plain
    name, latex name, array, units to show)."""

    def __init__(self, units, max_width: int):
        self.parts: list[tuple] = []
        self.units, self.max_width = units, max_width

    def h(self, title: str) -> None:
        self.parts.append(("h", title))

    def p(self, text: str) -> None:
        self.parts.append(("p", text))

    def eq(self, number: str, latex: str, plain: str) -> None:
        self.parts.append(("eq", number, latex, plain))

    def a(self, plain: str, latex: str, array, delta_for_units=None, weights: bool = False) -> None:
        array = np.asarray(array, dtype=np.float64)
        width = array.shape[-1] if array.ndim else 1
        if self.units is not None:
            units = [u for u in self.units if 0 <= u < width]
        elif delta_for_units is not None:
            units = sorted(np.argsort(-np.abs(np.atleast_2d(delta_for_units)[0]), kind="stable")[:3].tolist())
        else:
            units = list(range(min(3, width)))
        self.parts.append(("a", plain, latex, array, units, self.max_width, weights))


def _vec(a: Array) -> Array:
    """One sample's row as a vector; several samples stay a matrix (rows are samples)."""
    return a[0] if a.ndim == 2 and a.shape[0] == 1 else a


def _story(t, units, max_width: int) -> _Story:
    s = _Story(units, max_width)
    L, B, mu = t.n_layers, t.X.shape[0], t.learning_rate
    out = t.layer(L)
    acts = ", ".join(sorted(set(t.activations))) or "none"
    one = "one sample" if B == 1 else f"a batch of {B} samples (rows)"
    s.h(f"One step of backpropagation: network {'-'.join(map(str, t.sizes))}")
    s.p(f"Hidden activation: {acts}; likelihood: {t.likelihood}; {one}; learning rate mu = {mu:g}. "
        "Equation numbers are the lecture's (backpropagation, part 1).")
    if t.raw_X is not None:
        s.a("x (as given)", r"\mathbf{x}_{\text{raw}}", _vec(t.raw_X))
        s.p("The model standardizes its inputs first; what follows starts from the standardized x.")

    s.h("The criterion (eq. 1)")
    s.eq("1", r"J = -\frac{1}{B}\sum_{i=1}^{B} \log p(\mathbf{y}_i|\mathbf{x}_i)",
         "J = -(1/B) sum_i log p(y_i|x_i)")
    s.p("The mean over the batch (the lecture's sum divided by B), so that mu means the same for any "
        "batch size; constants that do not depend on the weights are left out.")

    s.h("Forward pass (eq. 3)")
    s.eq("3", rf"\mathbf{{f}}(\mathbf{{x}}) = \mathbf{{o}}(\mathbf{{z}}^{{({L})}}) = "
              rf"\mathbf{{o}}(\mathbf{{W}}^{{({L})\top}}\mathbf{{h}}^{{({L - 1})}}) = \cdots",
         f"f(x) = o(z[{L}]) = o(W[{L}]^T h[{L - 1}]) = ...")
    for lay in t.layers:
        l = lay.l
        s.a(f"W[{l}]", rf"\mathbf{{W}}^{{({l})}}", lay.W, lay.delta, weights=True)
        s.a(f"h[{l - 1}]" + (" = [x, 1]" if l == 1 else f" = [{t.layer(l - 1).activation}(z[{l - 1}]), 1]"),
            rf"\mathbf{{h}}^{{({l - 1})}}", _vec(lay.h_prev), t.layer(l - 1).delta if l > 1 else None)
        s.a(f"z[{l}] = W[{l}]^T h[{l - 1}]", rf"\mathbf{{z}}^{{({l})}} = \mathbf{{W}}^{{({l})\top}}"
            rf"\mathbf{{h}}^{{({l - 1})}}", _vec(lay.z), lay.delta)
    s.a(f"o = output of the {t.likelihood} likelihood", r"\mathbf{o}", _vec(t.o), out.delta)
    s.a("y (encoded)", r"\mathbf{y}", _vec(t.T), out.delta)
    s.p(f"J = {t.J:.6g}")

    s.h("Gradient with respect to the output weights (eqs. 4-6)")
    i, j = _chosen_weight(t)
    g_j, op = _vec(t.grad_o)[..., j], None if t.o_prime is None else _vec(t.o_prime)[..., j]
    h_i = _vec(out.h_prev)[..., i]
    s.eq("4", rf"\frac{{dJ}}{{dw_{{i,j}}^{{({L})}}}} = \frac{{d}}{{dw_{{i,j}}^{{({L})}}}} "
              rf"J(\mathbf{{y}}, \mathbf{{o}}(\mathbf{{W}}^{{({L})\top}}\mathbf{{h}}^{{({L - 1})}}))",
         f"dJ/dw[{L}]_ij = d/dw[{L}]_ij J(y, o(W[{L}]^T h[{L - 1}]))")
    s.eq("5", rf"\frac{{dJ}}{{dw_{{i,j}}^{{({L})}}}} = \frac{{dJ}}{{do_j}}\frac{{do_j}}{{dz_j^{{({L})}}}}"
              rf"\frac{{dz_j^{{({L})}}}}{{dw_{{i,j}}^{{({L})}}}}",
         f"dJ/dw[{L}]_ij = dJ/do_j * do_j/dz[{L}]_j * dz[{L}]_j/dw[{L}]_ij")
    if B == 1 and op is not None:
        s.p(f"For the weight from unit i = {i} of h[{L - 1}] to output j = {j}: dJ/do_j = {float(g_j):.6g}, "
            f"o'_j = {float(op):.6g}, h_i = {float(h_i):.6g}.")
    elif B == 1:
        s.p(f"For the weight from unit i = {i} of h[{L - 1}] to output j = {j}: the softmax couples the outputs, "
            f"so do_k/dz_j is a Jacobian and dJ/dz_j = sum_k dJ/do_k do_k/dz_j = {float(_vec(t.delta_general)[j]):.6g}; "
            f"h_i = {float(h_i):.6g}.")
    s.eq("6", rf"\frac{{dJ}}{{dw_{{i,j}}^{{({L})}}}} = \frac{{dJ}}{{do_j}} o_j' h_i^{{({L - 1})}} = "
              rf"h_i^{{({L - 1})}}\delta_j^{{({L})}}",
         f"dJ/dw[{L}]_ij = dJ/do_j o'_j h[{L - 1}]_i = h[{L - 1}]_i delta[{L}]_j")
    s.p(f"h_i delta_j = {float(np.sum(out.h_prev[:, i] * out.delta[:, j])):.6g} = grad W[{L}][{i}, {j}] "
        f"= {out.G[i, j]:.6g}" + ("" if out.G_numeric is None or np.isnan(out.G_numeric[i, j]) else
                                  f" (finite differences: {out.G_numeric[i, j]:.6g})"))

    s.h("The output delta (eqs. 7-8)")
    s.eq("7", rf"\delta_j^{{({L})}} = \frac{{dJ}}{{do_j}} o_j'", f"delta[{L}]_j = dJ/do_j o'_j")
    s.eq("8", rf"\boldsymbol{{\delta}}^{{({L})}} = \nabla_{{\mathbf{{o}}}} J \odot \mathbf{{o}}'",
         f"delta[{L}] = grad_o J (.) o'")
    s.a("grad_o J", r"\nabla_{\mathbf{o}} J", _vec(t.grad_o), out.delta)
    if t.o_prime is not None:
        s.a(f"o'(z[{L}])", rf"\mathbf{{o}}'(\mathbf{{z}}^{{({L})}})", _vec(t.o_prime), out.delta)
    else:
        s.p("The softmax is not elementwise: its o' is the Jacobian diag(o) - o o^T, and eq. (8) becomes "
            "delta_j = o_j (dJ/do_j - sum_k o_k dJ/do_k).")
    s.a(f"delta[{L}] by the general rule", rf"\boldsymbol{{\delta}}^{{({L})}}", _vec(t.delta_general), out.delta)
    if t.delta_shortcut is not None:
        diff = float(np.max(np.abs(t.delta_general - t.delta_shortcut)))
        s.p(f"For this likelihood ({t.likelihood}, a canonical pair) eq. (8) simplifies to delta = o - y"
            + (f" (divided by B = {B})" if B > 1 else "") + f"; the two agree to {diff:.1e}:")
        s.a(f"delta[{L}] = o - y", r"\mathbf{o} - \mathbf{y}", _vec(t.delta_shortcut), out.delta)
    else:
        s.p(f"{t.likelihood} is not a canonical pair: only the general rule applies.")

    s.h("The gradient matrix (eq. 9)")
    s.eq("9", rf"\nabla_{{\mathbf{{W}}^{{({L})}}}} J = \mathbf{{h}}^{{({L - 1})}}\boldsymbol{{\delta}}^{{({L})\top}}",
         f"grad W[{L}] = h[{L - 1}] delta[{L}]^T")
    s.a(f"grad W[{L}]", rf"\nabla_{{\mathbf{{W}}^{{({L})}}}} J", out.G, out.delta, weights=True)
    _check_note(s, out)

    s.h("The update (eq. 10)")
    s.eq("10", rf"\mathbf{{W}}^{{({L})}} \leftarrow \mathbf{{W}}^{{({L})}} - \mu\,\mathbf{{h}}^{{({L - 1})}}"
               rf"\boldsymbol{{\delta}}^{{({L})\top}}", f"W[{L}] <- W[{L}] - mu h[{L - 1}] delta[{L}]^T")
    s.a(f"W[{L}] after the step", rf"\mathbf{{W}}^{{({L})}}", out.W_after, out.delta, weights=True)

    s.h("The biases (eqs. 11-12)")
    s.eq("11", rf"\mathbf{{h}}^{{({L - 1})}} = (h_1^{{({L - 1})}}, \ldots, h_{{D}}^{{({L - 1})}}, 1)^\top",
         f"h[{L - 1}] = (h_1, ..., h_D, 1)^T, the bias as the last row of W[{L}]")
    s.eq("12", rf"\frac{{dJ}}{{db_j^{{({L})}}}} = \delta_j^{{({L})}}", f"dJ/db[{L}]_j = delta[{L}]_j")
    s.a(f"last row of grad W[{L}] (the bias gradient)", rf"\nabla_{{\mathbf{{b}}^{{({L})}}}} J", out.G[-1], out.delta)
    s.a(f"delta[{L}] summed over the batch", rf"\sum_i \boldsymbol{{\delta}}_i^{{({L})}}", out.delta.sum(axis=0),
        out.delta)

    for l in range(L - 1, 0, -1):
        lay = t.layer(l)
        s.h(f"Hidden layer {l}: the same chain rule one layer down")
        s.eq("", rf"\boldsymbol{{\delta}}^{{({l})}} = \phi'(\mathbf{{z}}^{{({l})}}) \odot "
                 rf"\tilde{{\mathbf{{W}}}}^{{({l + 1})}}\boldsymbol{{\delta}}^{{({l + 1})}}",
             f"delta[{l}] = phi'(z[{l}]) (.) (W[{l + 1}] without its bias row) delta[{l + 1}]")
        s.p(f"The bias row of W[{l + 1}] is left out: the trailing 1 of h[{l}] does not depend on earlier weights.")
        s.a(f"phi'(z[{l}]) ({lay.activation})", rf"\phi'(\mathbf{{z}}^{{({l})}})", _vec(lay.phi_prime), lay.delta)
        s.a(f"delta[{l}]", rf"\boldsymbol{{\delta}}^{{({l})}}", _vec(lay.delta), lay.delta)
        s.eq("9", rf"\nabla_{{\mathbf{{W}}^{{({l})}}}} J = \mathbf{{h}}^{{({l - 1})}}\boldsymbol{{\delta}}^{{({l})\top}}",
             f"grad W[{l}] = h[{l - 1}] delta[{l}]^T")
        s.a(f"grad W[{l}]", rf"\nabla_{{\mathbf{{W}}^{{({l})}}}} J", lay.G, lay.delta, weights=True)
        _check_note(s, lay)
        s.eq("10", rf"\mathbf{{W}}^{{({l})}} \leftarrow \mathbf{{W}}^{{({l})}} - \mu\,\nabla_{{\mathbf{{W}}^{{({l})}}}} J",
             f"W[{l}] <- W[{l}] - mu grad W[{l}]")
        s.a(f"W[{l}] after the step", rf"\mathbf{{W}}^{{({l})}}", lay.W_after, lay.delta, weights=True)

    s.h("Gradient check and the step's effect")
    checked = [lay for lay in t.layers if lay.n_checked]
    if checked:
        worst = t.max_rel_error
        s.p(f"Backpropagation against fourth-order central differences (step {t.eps:g}, float64): "
            + "; ".join(f"layer {lay.l}: {lay.max_rel_error:.1e} over {lay.n_checked} entries" for lay in checked)
            + f". Max relative error {worst:.1e}: {'PASSED' if worst < 1e-6 else 'FAILED'} (tolerance 1e-06).")
    else:
        s.p("No finite-difference check was asked for.")
    verdict = "lower than" if t.J_after < t.J else "not lower than"
    s.p(f"J after the step = {t.J_after:.6g} ({verdict} J before, {t.J:.6g}).")
    return s


def _chosen_weight(t) -> tuple[int, int]:
    """The output weight whose chain rule is spelled out: into the target's unit (the
    largest target) from the input unit with the largest |h_i| (bias excluded)."""
    out = t.layer(t.n_layers)
    j = int(np.argmax(t.T[0])) if t.T.shape[1] > 1 else 0
    h = np.abs(out.h_prev[0, :-1])
    i = int(np.argmax(h)) if h.size else 0
    return i, j


def _check_note(s: _Story, lay) -> None:
    if lay.n_checked:
        s.p(f"Finite differences agree with grad W[{lay.l}]: max relative error {lay.max_rel_error:.1e} "
            f"over {lay.n_checked} entries.")


# --- numbers ----------------------------------------------------------------------------------
def _num(v: float) -> str:
    return f"{v + 0.0:.6g}"  # (+ 0.0 turns -0 into 0)


def _summary(a: Array) -> str:
    return (f"shape {tuple(a.shape)}: min {_num(a.min())}, mean {_num(a.mean())}, max {_num(a.max())}, "
            f"norm {_num(np.linalg.norm(a))}")


def _is_wide(a: Array, max_width: int) -> bool:
    return a.ndim >= 1 and (a.shape[-1] > max_width or (a.ndim == 2 and a.shape[0] > max_width + 1))


def _unit_rows(a: Array, units: list, weights: bool) -> list[tuple[str, Array]]:
    """For a wide array, the chosen units in full: a vector's entries, each sample's value
    (rows are samples), or a weight matrix's column: its weights in full when few, else
    their norm, and its bias (the last row)."""
    if a.ndim == 1:
        return [(f"unit {u}: {_num(a[u])}", None) for u in units]
    if not weights:
        return [(f"unit {u}", a[:, u]) for u in units]
    if a.shape[0] <= 11:
        return [(f"unit {u}: bias {_num(a[-1, u])}, weights", a[:-1, u]) for u in units]
    return [(f"unit {u}: bias {_num(a[-1, u])}, weight norm {_num(np.linalg.norm(a[:-1, u]))}", None)
            for u in units]


def render(t, format: str = "text", units=None, max_width: int = 10) -> str:
    """Write a :class:`StepTrace` as ``text``, ``markdown`` or ``html``."""
    if format not in FORMATS:
        raise ValueError(f"format: expected one of {', '.join(FORMATS)}, found {format!r}")
    max_width = check_int("max_width", max_width, 1)
    if units is not None:
        units = [check_int("units", u, 0) for u in units]
    story = _story(t, units, max_width)
    return {"text": _text, "markdown": _markdown, "html": _html}[format](story.parts)


def html_cell(t, units=None, max_width: int = 10) -> str:
    """The explanation as one element with its own style, scoped to it (for Jupyter: the
    page's style, ``body`` included, would otherwise restyle the whole notebook)."""
    rules = re.findall(r"([^{}]+)\{([^{}]*)\}", CSS)
    scoped = "".join(",".join(".dp-step" if sel.strip() == "body" else f".dp-step {sel.strip()}"
                              for sel in selectors.split(",")) + "{" + body + "}" for selectors, body in rules)
    return f'<div class="dp-step"><style>{scoped}</style>{html_body(t, units, max_width)}</div>'


def html_body(t, units=None, max_width: int = 10, level: int = 1) -> str:
    """The explanation as HTML elements without the page around them (for a report;
    style them with :data:`CSS`), its title a heading of ``level``, its sections one below."""
    return html_fragment(_story(t, units, max_width).parts, level)


def _text(parts) -> str:
    out = []
    for b in parts:
        if b[0] == "h":
            out.append(f"\n{b[1]}" if out else b[1])
        elif b[0] == "p":
            out.append(b[1])
        elif b[0] == "eq":
            out.append(f"  {b[3]}" + (f"   (eq. {b[1]})" if b[1] else ""))
        else:
            _, plain, _, a, units, max_width, weights = b
            if _is_wide(a, max_width):
                out.append(f"  {plain}: {_summary(a)}")
                for name, v in _unit_rows(a, units, weights):
                    out.append(f"    {name}" + ("" if v is None else " = " + _text_row(v)))
            elif a.ndim <= 1:
                out.append(f"  {plain} = {_text_row(np.atleast_1d(a))}")
            else:
                out.append(f"  {plain} =\n" + "\n".join(f"    {_text_row(row)}" for row in a))
    return "\n".join(out) + "\n"


def _text_row(v: Array) -> str:
    return "[" + "  ".join(_num(x) for x in v) + "]"


def _markdown(parts) -> str:
    out = []
    for b in parts:
        if b[0] == "h":
            out.append(("## " if out else "# ") + b[1])
        elif b[0] == "p":
            out.append(b[1].replace("*", r"\*"))
        elif b[0] == "eq":
            out.append(f"$$ {b[2]}" + (rf" \tag{{{b[1]}}}" if b[1] else "") + " $$")
        else:
            _, _, latex, a, units, max_width, weights = b
            if _is_wide(a, max_width):
                rows = [f"| {name} | {'' if v is None else ', '.join(_num(x) for x in v)} |"
                        for name, v in _unit_rows(a, units, weights)]
                out.append(f"${latex}$: {_summary(a)}\n\n| unit | values |\n|---|---|\n" + "\n".join(rows))
            else:
                m = np.atleast_2d(a)
                body = r" \\ ".join(" & ".join(_num(x) for x in row) for row in m)
                out.append(rf"$$ {latex} = \begin{{bmatrix}} {body} \end{{bmatrix}} $$")
    return "\n\n".join(out) + "\n"


CSS = """body{font-family:Georgia,serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;line-height:1.45}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.6rem;border-bottom:1px solid #ddd}
.eq{display:flex;justify-content:space-between;margin:.6rem 0;font-size:1.1rem}.eq .n{color:#555}
.math{font-style:italic}.math b{font-style:normal}
.frac{display:inline-flex;flex-direction:column;vertical-align:middle;text-align:center;font-size:.9em}
.frac>span:first-child{border-bottom:1px solid #222}
table.m{border-collapse:collapse;margin:.3rem 0 .8rem 1.5rem;font-family:monospace;font-size:.85rem;
border-left:2px solid #444;border-right:2px solid #444}
table.m td{padding:.05rem .6rem;text-align:right;white-space:nowrap}.v{white-space:nowrap}
.arr{margin-left:1rem}.sum{font-family:monospace;font-size:.85rem}"""


def _html(parts, title: str = "deltaprop explain") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{CSS}</style></head><body>\n{html_fragment(parts)}</body></html>\n")


def html_fragment(parts, level: int = 1) -> str:
    """The parts as HTML elements (the body of :func:`_html`, or a section of a report)."""
    out, first = [], True
    for b in parts:
        if b[0] == "h":
            h = level if first else level + 1
            out.append(f"<h{h}>{html.escape(b[1])}</h{h}>")
            first = False
        elif b[0] == "p":
            out.append(f"<p>{text_html(b[1])}</p>")
        elif b[0] == "eq":
            out.append(f"<div class=\"eq\"><span class=\"math\">{latex_html(b[2])}</span>"
                       + (f"<span class=\"n\">(eq. {b[1]})</span>" if b[1] else "") + "</div>")
        else:
            _, _, latex, a, units, max_width, weights = b
            name = f"<span class=\"math\">{latex_html(latex)}</span>"
            if _is_wide(a, max_width):
                items = "".join(f"<li>{text_html(n)}" + ("" if v is None else " = " + text_html(_text_row(v)))
                                + "</li>" for n, v in _unit_rows(a, units, weights))
                out.append(f"<div class=\"arr\">{name}: <span class=\"sum\">{text_html(_summary(a))}</span>"
                           f"<ul class=\"sum\">{items}</ul></div>")
            else:
                rows = "".join("<tr>" + "".join(f"<td>{_num(x)}</td>" for x in row) + "</tr>"
                               for row in np.atleast_2d(a))
                out.append(f"<div class=\"arr\">{name} =<table class=\"m\">{rows}</table></div>")
    return "\n".join(out) + "\n"


# --- LaTeX (the subset the story uses) to HTML -------------------------------------------------
_SYMBOLS = {r"\top": "⊤", r"\odot": "⊙", r"\delta": "δ", r"\mu": "μ", r"\nabla": "∇", r"\leftarrow": "←",
            r"\phi": "φ", r"\sum": "∑", r"\log": "log ", r"\cdots": "⋯", r"\ldots": "…", r"\,": " ",
            r"\;": " ", r"\quad": "  "}
_NUMBER = r"\d+(?:\.\d+)?(?:e[-+]?\d+)?"
_TOKEN = re.compile(rf"\\[a-zA-Z]+|\\.|{_NUMBER}|[{{}}^_]|[^\\{{}}^_]")
_SIGNED = re.compile(rf"(?<![\w.])-?{_NUMBER}")


def text_html(text: str) -> str:
    """Escaped text whose numbers never break across lines: a browser may wrap after any
    hyphen, which would cut ``-0.5`` or ``9.153e-07`` in two."""
    return _SIGNED.sub(lambda m: f'<span class="v">{m[0]}</span>' if "-" in m[0] else m[0], html.escape(text))


def latex_html(latex: str) -> str:
    """HTML for the LaTeX the explanations write: bold vectors, sub- and superscripts,
    fractions, Greek letters and operators; readable offline, with no script."""
    tokens = _TOKEN.findall(latex)
    pos = 0

    def group() -> str:  # one argument: {...} or a single token
        nonlocal pos
        if pos < len(tokens) and tokens[pos] == "{":
            pos += 1
            inner = seq(until="}")
            pos += 1
            return inner
        return atom()

    def atom() -> str:
        nonlocal pos
        tok = tokens[pos]
        pos += 1
        if tok in (r"\mathbf", r"\boldsymbol"):
            return f"<b>{group()}</b>"
        if tok == r"\text":
            return f"<span style=\"font-style:normal\">{group()}</span>"
        if tok == r"\tilde":
            return f"{group()}&#771;"
        if tok == r"\frac":
            num = group()
            return f"<span class=\"frac\"><span>{num}</span><span>{group()}</span></span>"
        if tok in ("^", "_"):
            tag = "sup" if tok == "^" else "sub"
            return f"<{tag}>{group()}</{tag}>"
        if tok in _SYMBOLS:
            return _SYMBOLS[tok]
        if tok == "'":
            return "′"
        if tok == "-":
            return " − "
        if "-" in tok and tok[0].isdigit():  # a number with a negative exponent: kept on one line
            return f'<span class="v">{tok}</span>'
        return html.escape(tok.lstrip("\\"))

    def seq(until: str | None = None) -> str:
        parts = []
        while pos < len(tokens) and tokens[pos] != until:
            parts.append(group() if tokens[pos] == "{" else atom())
        return "".join(parts)

    return seq()
