"""tpmon: the status monitor of the French tiers-payant networks."""
