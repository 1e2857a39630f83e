"""The package's docstring examples run as doctests in the fast tier (`--doctest-modules`, see pyproject.toml).

They sit in TRL-style fences (a line of three backquotes right after the expected output), which the standard doctest
parser would read as part of that output: pytest's finder is given transformers' own parser for such docstrings.
"""

import doctest

from transformers.testing_utils import HfDocTestParser

# pytest builds its finder without a parser, so it takes its base class's default: make that default this parser.
verbose, _, recurse, exclude_empty = doctest.DocTestFinder.__init__.__defaults__
doctest.DocTestFinder.__init__.__defaults__ = (verbose, HfDocTestParser(), recurse, exclude_empty)
