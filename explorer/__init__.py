"""explorer: channel-pruning design-space exploration with analytic cost and roofline models."""
