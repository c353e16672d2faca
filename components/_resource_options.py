"""Small helpers for ``pulumi.ResourceOptions`` shared by the components."""

from __future__ import annotations

import pulumi

__all__ = ["depends_on_list"]


def depends_on_list(opts: pulumi.ResourceOptions | None) -> list[pulumi.Resource]:
    """The resources ``opts`` depends on, as a list.

    Children do not inherit their parent component's ``depends_on``: a component
    passes this list on to the children that must wait too.
    """
    depends = opts.depends_on if opts is not None else None
    if depends is None:
        return []
    return list(depends) if isinstance(depends, (list, tuple)) else [depends]  # type: ignore[list-item]
