"""The runtime: app instances in sandboxes, their lifecycle, and the gateway to them."""
