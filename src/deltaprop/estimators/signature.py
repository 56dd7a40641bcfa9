"""One constructor for every estimator: its parameters listed once, stored under their names.

scikit-learn reads an estimator's hyperparameters from the signature of its ``__init__``
(``get_params``, ``clone``, ``set_params``, the estimator checks): explicit parameters, no
``*args`` or ``**kwargs``, each stored unchanged under its own name. :func:`constructor`
makes that ``__init__`` from one ordered table of names and defaults, with the explicit
signature (``__signature__``, which :func:`inspect.signature` reads), so that the two
MLPs share their 24 parameters, and the two tabular estimators theirs, without copies.
"""

from __future__ import annotations

from inspect import Parameter, Signature


def constructor(defaults: dict, positional: int = 0):
    """An ``__init__`` taking the parameters of ``defaults`` (name -> default, in order), the
    first ``positional`` by position or keyword and the rest by keyword only, and storing
    each as the attribute of its name."""
    kinds = [Parameter.POSITIONAL_OR_KEYWORD] * positional + [Parameter.KEYWORD_ONLY] * (len(defaults) - positional)
    signature = Signature([Parameter("self", Parameter.POSITIONAL_OR_KEYWORD)] + [
        Parameter(name, kind, default=default) for (name, default), kind in zip(defaults.items(), kinds)])

    def __init__(self, *args, **kwargs):
        try:
            bound = signature.bind(self, *args, **kwargs)
        except TypeError as e:  # as Python says it of a written-out __init__
            raise TypeError(f"{type(self).__name__}.__init__() {e}") from None
        bound.apply_defaults()
        for name, value in list(bound.arguments.items())[1:]:
            setattr(self, name, value)

    __init__.__signature__ = signature
    return __init__
