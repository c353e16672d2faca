"""A team's own stack: one model API on the platform's cluster, read through a StackReference.

The platform team runs modelplane (infra/); its stack exports ``platform`` (the cluster and
its node groups) and ``kubeconfig``. This stack adds the ranker API to that cluster, on one
of its node groups, validated by the same config model as the platform's own APIs.
"""

import pulumi

from modelplane import ApiConfig, ModelApi, ModelApiArgs, PlatformReference

config = pulumi.Config()
platform = PlatformReference("platform", config.require("platformStack"))
group = config.require("nodeGroup")
spec = ApiConfig.model_validate({**config.require_object("api"), "nodeGroup": group})

ranker = ModelApi("ranker", ModelApiArgs(spec=spec, placement=platform.placement(group), cluster=platform.context()))

pulumi.export("url", ranker.url)
