"""The package's docstring examples run as doctests in the fast tier (`--doctest-modules`, see pyproject.toml).

They sit in TRL-style fences (a line of three backquotes right after the expected output), which the standard doctest
parser would read as part of that output: pytest's finder is given a parser that reads a fence line as the blank line
that ends an example's output (no other change; nothing is imported for it).
"""

import doctest
import re

FENCE = re.compile(r"^[ ]*```\w*[ ]*$", re.MULTILINE)


class FencedDocTestParser(doctest.DocTestParser):
    def parse(self, string, name="<string>"):
        return super().parse(FENCE.sub("", string), name)


# pytest builds its finder without a parser, so it takes its base class's default: make that default this parser.
verbose, _, recurse, exclude_empty = doctest.DocTestFinder.__init__.__defaults__
doctest.DocTestFinder.__init__.__defaults__ = (verbose, FencedDocTestParser(), recurse, exclude_empty)
