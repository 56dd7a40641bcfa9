"""The argument parser of every command, and the checks of option values it applies."""

from __future__ import annotations

import argparse
import difflib
import re

from ..registry import lookup
from ..validation import check_float, check_fraction, check_int
from .common import CLIError
from .evaluate import cmd_evaluate
from .explain import cmd_explain
from .export import cmd_export
from .gradcheck import cmd_gradcheck
from .info import cmd_info
from .predict import cmd_predict
from .train import cmd_train


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line (main adds the "deltaprop: error:" prefix), not usage + message
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            message += _did_you_mean(m.group(1), re.findall(r"'([^']*)'", m.group(2)))
        raise CLIError(f"{message} (see {self.prog} --help)")


def _did_you_mean(word: str, candidates) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def unrecognized(extras: list[str], parser: argparse.ArgumentParser) -> str:
    """'unrecognized arguments: --hiden 3; did you mean '--hidden'?' for options of ``parser``."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    options = [o for action in parser._actions for o in action.option_strings]
    for word in extras:
        if word.startswith("--"):
            hint = _did_you_mean(word.split("=")[0], options)
            if hint:
                return message + hint + f" (see {parser.prog} --help)"
    return message + f" (see {parser.prog} --help)"


def _fmt():
    return lambda prog: argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


# --- the parser ---------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from .. import BACKENDS, KERNELS, OPTIMIZERS, SCHEDULES, __version__
    from ..data.datasets import BUILTIN_NAMES
    from ..training.recipe import TABLE_RECIPE

    p = _Parser(prog="deltaprop", formatter_class=_fmt(),
                description="Feedforward networks trained by backpropagation, from first principles.",
                epilog="examples:\n  deltaprop train\n  deltaprop train --data moons --hidden 32 32 --plot moons.png\n"
                       "  deltaprop evaluate digits-model.safetensors --data digits\n"
                       "  deltaprop gradcheck --hidden 5 4 --activation tanh")
    p.add_argument("--version", action="version", version=f"deltaprop {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    p.commands = sub.choices  # command name -> its parser (for suggestions on a mistyped option)

    t = sub.add_parser("train", help="train a network (on the digits data set by default)", formatter_class=_fmt(),
                       epilog="examples:\n  deltaprop train\n  deltaprop train --data iris --hidden 16 --epochs 200\n"
                              "  deltaprop train --data data.csv --target label --hidden 128 64 --dropout 0.2\n"
                              "  deltaprop train --data mnist/ --hidden 256 128 --epochs 20 --batch-size 128\n"
                              "  deltaprop train --checkpoint run.ckpt   (Ctrl-C, then add --resume run.ckpt)")
    t.add_argument("--data", default="digits", metavar="SOURCE",
                   help=f"built-in ({', '.join(BUILTIN_NAMES)}), .csv, .npz, .npy, an MNIST IDX folder, "
                        "mnist.pkl.gz, or data read in blocks: a folder of X*.npy/y*.npy or .parquet files, "
                        ".parquet, .h5/.hdf5, .zarr (default: digits)")
    t.add_argument("--target", help="CSV target column (default: the last), the targets' .npy file, or the "
                                    "target array (HDF5, Zarr; default y) or column (Parquet; default y)")
    t.add_argument("--features", help="data in blocks: the input array (HDF5, Zarr; default X) or the "
                                      "comma-separated input columns (Parquet; default: all but the target)")
    t.add_argument("--block-rows", type=_int_at_least(1), metavar="ROWS",
                   help="data in blocks: rows per block, cutting Parquet row groups and HDF5/Zarr chunks "
                        "(default: a Parquet row group; about 16 MB of whole chunks, at least 16 blocks, otherwise)")
    t.add_argument("--distributed", choices=["mpi", "torch"],
                   help="data-parallel training, one process per rank: start with mpiexec -n P (mpi) or "
                        "torchrun --nproc-per-node P (torch)")
    t.add_argument("--hidden", type=int, nargs="*", default=[128, 64], metavar="WIDTH",
                   help="hidden layer widths (default: 128 64)")
    _network_options(t, "relu", None)
    t.add_argument("--optimizer", type=_with_settings(OPTIMIZERS, "--optimizer"),
                   metavar="NAME[:K=V,...]",
                   help=f"{', '.join(OPTIMIZERS)}, with settings if wanted, e.g. momentum:momentum=0.95 "
                        "or adamw:weight_decay=0.05 (default: adam; learning rate "
                        f"{TABLE_RECIPE['learning_rate']:g} for a table: a CSV or Parquet file)")
    t.add_argument("--lr", type=_POSITIVE, help="learning rate mu (default: the optimizer's)")
    t.add_argument("--clip-norm", type=_POSITIVE, metavar="NORM",
                   help="rescale the gradient when its norm exceeds NORM (default: no clipping)")
    t.add_argument("--max-norm", type=_POSITIVE, metavar="NORM",
                   help="cap each unit's incoming weight vector at this norm after every step (default: none)")
    t.add_argument("--grad-tol", type=_POSITIVE, metavar="TOL",
                   help="stop when the epoch's gradient norm falls below TOL (default: off)")
    t.add_argument("--batch-size", type=_int_at_least(0),
                   help="mini-batch size; 0 for full-batch gradient descent "
                        f"(default: 32; {TABLE_RECIPE['batch_size']} for a table: a CSV or Parquet file)")
    t.add_argument("--epochs", type=_int_at_least(1),
                   help=f"maximum epochs (default: 100; {TABLE_RECIPE['epochs']} for a table: a CSV or Parquet file)")
    t.add_argument("--members", type=_int_at_least(1),
                   help="train an ensemble of this many networks together, predicting with their mean "
                        f"(default: 1; {TABLE_RECIPE['members']} for a table: a CSV or Parquet file)")
    t.add_argument("--bins", type=_int_at_least(0),
                   help="also encode each number column piecewise-linearly over this many quantile bins, for a "
                        f"table with column names (default: 0; {TABLE_RECIPE['bins']} for a table: a CSV or Parquet file)")
    t.add_argument("--label-smoothing", type=_RATE,
                   metavar="S", help="train on class targets (1 - S) T + S / K (default: 0; "
                                     f"{TABLE_RECIPE['label_smoothing']} for a table: a CSV or Parquet file)"),
    t.add_argument("--schedule", default="constant", type=_with_settings(SCHEDULES, "--schedule"),
                   metavar="NAME[:K=V,...]",
                   help=f"learning-rate schedule: {', '.join(SCHEDULES)}, with settings if wanted, e.g. "
                        "step:step_size=20,gamma=0.5 or cosine:warmup=5 (default: constant)")
    t.add_argument("--l2", type=_NON_NEGATIVE, default=0.0, help="L2 weight decay (default: 0)")
    t.add_argument("--dropout", type=_RATE, default=0.0,
                   help="dropout rate on the hidden layers, in [0, 1) (default: 0)")
    t.add_argument("--early-stopping", type=_int_at_least(0), metavar="PATIENCE",
                   help="stop after PATIENCE epochs without validation improvement; 0 turns it off (default: 10)")
    t.add_argument("--validation-fraction", type=_RATE,
                   help="fraction of the training data held out for validation (default: 0.1; for a table, "
                        "with neither this nor --early-stopping given, each member of the ensemble holds out "
                        "a fold of its own instead: cross-fit)")
    t.add_argument("--test-fraction", type=_FRACTION, default=0.2,
                   help="fraction held out for the final test (default: 0.2; MNIST has its own)")
    t.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="standardize features with the training mean and std (default: on, except for "
                        "images, whose pixels are scaled to [0, 1])")
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="floating-point type of the weights and of the computation (default: float32)")
    t.add_argument("--kernels", choices=list(KERNELS),
                   help="who does the element-wise work: numba (fused kernels, deltaprop[fast]) or numpy "
                        "(the reference) (default: $DELTAPROP_KERNELS, else numba when installed)")
    t.add_argument("--backend", choices=list(BACKENDS),
                   help="the array library training runs on: numpy (default), cupy (an NVIDIA GPU, "
                        "deltaprop[gpu]) or torch (PyTorch CPU tensors, which prove the seam)")
    t.add_argument("--out", help="model file (default: DATA-model.safetensors, named after the data set)")
    t.add_argument("--plot", help="learning-curve PNG (default: DATA-curves.png); '' for none")
    t.add_argument("--checkpoint", help="checkpoint file, written every --checkpoint-every epochs and on Ctrl-C")
    t.add_argument("--checkpoint-every", type=_int_at_least(1), default=1, metavar="EPOCHS",
                   help="write the checkpoint every EPOCHS epochs (default: 1)")
    t.add_argument("--resume", help="continue the run of this checkpoint, bit-identically, until it has run --epochs "
                                    "in all; with --checkpoint the same file, the same command starts the run, "
                                    "continues it after a crash, and writes the model of a finished run again")
    t.add_argument("--quiet", action="store_true", help="print nothing but errors")
    t.add_argument("--log", help="write one JSON line per epoch to this file (when the run ends)")
    t.add_argument("--diagnostics", action="store_true",
                   help="measure every layer each epoch (gradient and weight norms, update/weight ratio, dead and "
                        "saturated units): in the log and the plot, and said in words at the end when something "
                        "looks wrong")
    t.add_argument("--report", metavar="FILE",
                   help="write a self-contained HTML report: curves, diagnostics, test results, the network, "
                        "and one step explained (turns --diagnostics on)")
    t.add_argument("--animate", metavar="FILE",
                   help="for 2-D data: a GIF of the decision regions epoch by epoch")
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="accuracy, per-class precision/recall and confusion matrix, or R^2/RMSE",
                       formatter_class=_fmt(),
                       epilog="examples:\n  deltaprop evaluate digits-model.safetensors --data digits --held-out\n"
                              "  deltaprop evaluate model.safetensors --data test.csv --target label --plot cm.png")
    e.add_argument("model", help="a model file written by deltaprop train")
    e.add_argument("--data", required=True, metavar="SOURCE",
                   help="the data to evaluate on: a built-in name, .csv, .npz, .npy, MNIST folder or mnist.pkl.gz "
                        "(its test split, when it has one), or data in blocks as for train")
    e.add_argument("--target", help="CSV target column (default: the model's, else the last), or the target "
                                    "array or column of data in blocks")
    e.add_argument("--features", help="data in blocks: the input array or the comma-separated input columns")
    e.add_argument("--block-rows", type=_int_at_least(1), metavar="ROWS",
                   help="data in blocks: rows per block, as given to train (--held-out finds the same test rows)")
    e.add_argument("--held-out", action="store_true", help="only the test split recorded at training time")
    e.add_argument("--plot", help="confusion-matrix PNG")
    e.set_defaults(func=cmd_evaluate)

    r = sub.add_parser("predict", help="predict from a CSV or .npy of features", formatter_class=_fmt(),
                       epilog="examples:\n  deltaprop predict model.safetensors inputs.csv --out preds.csv --proba")
    r.add_argument("model", help="a model file written by deltaprop train")
    r.add_argument("input", help="CSV (with a header) or .npy of features")
    r.add_argument("--out", help="CSV to write (default: standard output)")
    r.add_argument("--proba", action="store_true", help="add class probabilities")
    r.set_defaults(func=cmd_predict)

    g = sub.add_parser("gradcheck", help="backpropagation against finite differences, layer by layer",
                       formatter_class=_fmt(),
                       epilog="examples:\n  deltaprop gradcheck\n  deltaprop gradcheck --hidden 6 5 --activation gelu "
                              "--likelihood sigmoid+squared_error\n  deltaprop gradcheck --model model.safetensors")
    g.add_argument("--model", help="check a saved model instead of a new one")
    g.add_argument("--inputs", type=_int_at_least(1), default=4, help="input width D_0 (default: 4)")
    g.add_argument("--hidden", type=int, nargs="*", default=[5, 4], metavar="WIDTH",
                   help="hidden layer widths (default: 5 4)")
    g.add_argument("--outputs", type=_int_at_least(1), default=3, help="output width D_L (default: 3)")
    _network_options(g, "tanh", "categorical")
    g.add_argument("--samples", type=_int_at_least(1), default=8,
                   help="random samples in the batch checked (default: 8)")
    g.add_argument("--max-per-layer", type=_int_at_least(1), metavar="N",
                   help="check N randomly chosen weights per layer (default: all; 30 with --model)")
    g.add_argument("--seed", type=int, default=0, help="random seed of the network and the samples (default: 0)")
    g.set_defaults(func=cmd_gradcheck)

    xp = sub.add_parser("explain", help="one update step, number by number, with the lecture's equations",
                        formatter_class=_fmt(),
                        epilog="examples:\n  deltaprop explain\n"
                               "  deltaprop explain --sizes 2 2 1 --x 1 2 --y 1 --lr 0.5\n"
                               "  deltaprop explain --sizes 3 4 2 --activation tanh --likelihood categorical --y 1\n"
                               "  deltaprop explain --model digits-model.safetensors --sample 3 --units 0 5\n"
                               "  deltaprop explain --format html --out step.html")
    xp.add_argument("--sizes", type=int, nargs="+", default=[2, 2, 1], help="layer widths (default: 2 2 1)")
    _network_options(xp, "sigmoid", "bernoulli")
    xp.add_argument("--x", type=float, nargs="+", help="the input (default: random)")
    xp.add_argument("--y", type=float, nargs="+", help="the target (default: random)")
    xp.add_argument("--lr", type=_POSITIVE,
                    help="mu of eq. (10) (default: 0.5; 0.01 with --model)")
    xp.add_argument("--seed", type=int, default=0, help="random seed of the weights, x and y (default: 0)")
    xp.add_argument("--model", help="explain a trained model's step instead of a new small network")
    xp.add_argument("--data", metavar="SOURCE", help="with --model: the data to take the sample from "
                    "(default: the model's training data; its test split when it has one)")
    xp.add_argument("--target", help="with --model: CSV target column (default: the model's, else the last)")
    xp.add_argument("--sample", type=_int_at_least(0), metavar="N",
                    help="with --model: the row to explain (default: 0)")
    xp.add_argument("--units", type=_int_at_least(0), nargs="+", metavar="J",
                    help="units shown in full in layers too wide to print (default: the 3 with the largest delta)")
    xp.add_argument("--format", default="text", choices=["text", "markdown", "html"],
                    help="text, markdown (LaTeX math) or html (one self-contained page) (default: text)")
    xp.add_argument("--out", help="file to write (default: standard output)")
    xp.set_defaults(func=cmd_explain)

    i = sub.add_parser("info", help="architecture, parameter count and training metadata of a model",
                       formatter_class=_fmt(), epilog="example:\n  deltaprop info digits-model.safetensors")
    i.add_argument("model", help="a model file written by deltaprop train")
    i.set_defaults(func=cmd_info)

    x = sub.add_parser("export", help="export a model to ONNX", formatter_class=_fmt(),
                       epilog="example:\n  deltaprop export digits-model.safetensors --onnx model.onnx")
    x.add_argument("model", help="a model file written by deltaprop train")
    x.add_argument("--onnx", required=True, help="the .onnx file to write")
    x.set_defaults(func=cmd_export)
    return p


def _network_options(parser, activation: str, likelihood: str | None) -> None:
    """``--activation`` and ``--likelihood``, declared once for every command that builds a
    network; ``likelihood`` None: chosen from the target."""
    from .. import ACTIVATIONS

    parser.add_argument("--activation", default=activation, choices=list(ACTIVATIONS), metavar="NAME",
                        help=f"hidden activation: {', '.join(ACTIVATIONS)} (default: {activation})")
    parser.add_argument("--likelihood", default=likelihood, type=_likelihood, metavar="NAME",
                        help="categorical, bernoulli, gaussian, poisson or ACTIVATION+LOSS (default: "
                             f"{likelihood or 'from the target'})")


def _with_settings(registry, option):
    """NAME or NAME:key=value,... -> (name, {key: number}), checked against the class's arguments."""
    import inspect

    def parse(value):
        name, _, rest = value.partition(":")
        try:
            name = lookup(option.lstrip("-"), registry, name)  # (the library's rule for names)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).split(": ", 1)[1]) from None
        allowed = [p for p in inspect.signature(registry[name]).parameters if p != "self"]
        settings = {}
        for item in filter(None, rest.split(",")):
            key, eq, number = item.partition("=")
            if not eq or key not in allowed:
                raise argparse.ArgumentTypeError(
                    f"{item!r} is not a setting of {name}; it takes {', '.join(allowed) or 'none'}")
            try:
                settings[key] = int(number) if number.lstrip("-").isdigit() else float(number)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{key}: expected a number, found {number!r}") from None
        return name, settings
    return parse


def _likelihood(value):
    """A likelihood name, checked by the registry (which names the valid pairs)."""
    from .. import get_likelihood

    try:
        get_likelihood(value)
    except (ValueError, TypeError) as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("likelihood: ")) from None
    return value.lower()


def _checked(check, cast=float, *bounds, **options):
    """An option's type from a check of :mod:`deltaprop.validation` (one rule for the API and
    the command line): the text cast, then checked there; its message without the name, which
    argparse adds as the option's."""
    def parse(value):
        try:
            v = cast(value)
        except ValueError:
            v = value  # (the check says what it expected)
        try:
            return check("", v, *bounds, **options)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e).removeprefix(": ")) from None
    return parse


def _int_at_least(minimum):
    return _checked(check_int, int, minimum)


_POSITIVE = _checked(check_float, float, 0.0, strict=True)
_NON_NEGATIVE = _checked(check_float, float, 0.0)
_FRACTION = _checked(check_fraction, float)  # in (0, 1)
_RATE = _checked(check_fraction, float, closed_low=True)  # in [0, 1)
