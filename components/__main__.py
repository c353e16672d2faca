"""Serve modelplane as a Pulumi component package (``pulumi package add <repo>/components``).

Pulumi's Python language host runs this file as a script of the directory, with the directory
first on ``sys.path``; that entry goes, or ``components/platform.py`` would stand in for the
standard library's ``platform``. The components come from the installed ``modelplane``.
"""

import os
import sys

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]

    from modelplane.package import main

    main()
