"""Serve modelplane as a Pulumi component package (``pulumi package add <repo>/components``).

Pulumi's Python language host runs this file as a script of the directory, with the directory
first on ``sys.path``; that entry goes, so that no module here can stand in for a standard-library
one of the same name. The components come from the installed ``modelplane``.
"""

import os
import sys

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]

    from modelplane.package import main

    main()
