"""The modelplane Pulumi program: validate the stack's whole config, build the estate, export."""

import pulumi

from modelplane import Estate, load_estate

config = load_estate()
estate = Estate(config.cluster.name, config)

pulumi.export("clusterName", estate.cluster_name)
if estate.kubeconfig is not None:
    pulumi.export("kubeconfig", estate.kubeconfig)
pulumi.export("apiUrls", estate.api_urls)
# What other stacks read through modelplane.PlatformReference to add APIs to this cluster.
pulumi.export("platform", estate.platform)
if estate.external_urls is not None:
    pulumi.export("externalUrls", estate.external_urls)
