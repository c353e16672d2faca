"""Print, as a JSON list, the stacks of stacks/ that CI can preview: those that reach their cluster from CI.

A stack whose cluster is an existing one read from a kubeconfig file (``cluster.existing.kubeconfigPath``,
like ``local``) names a file on its owner's machine; it is left out. Run from the project root after
``pip install .``.
"""

from __future__ import annotations

import json
from pathlib import Path

from modelplane.offline import load_config, stack_names


def previewable(project: Path) -> list[str]:
    stacks = []
    for stack in stack_names(project):
        _, estate = load_config(project, stack)
        if estate.existing is None or estate.existing.kubeconfig_path is None:
            stacks.append(stack)
    return stacks


if __name__ == "__main__":
    print(json.dumps(previewable(Path.cwd())))
