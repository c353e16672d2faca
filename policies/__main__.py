"""What the Pulumi engine runs (``pulumi preview --policy-pack policies``): serve the modelplane policy pack."""

from modelplane_policies import serve

serve()
