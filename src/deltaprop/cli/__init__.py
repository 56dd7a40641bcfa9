"""The ``deltaprop`` command: train, evaluate, predict, gradcheck, explain, info and export.

Every failure the user can cause (a missing file, a malformed CSV, a model file
that fails validation, an unknown option value) prints one line on stderr and
exits with status 2, with no traceback and no partial output file.

One module per command (``train``, ``evaluate``, ``predict``, ``gradcheck``,
``explain``, ``info``, ``export``), what they share in ``common``, the argument
parser in ``parser``, and :func:`main`, which runs them, in ``entry``.
"""

from .entry import main

__all__ = ["main"]
