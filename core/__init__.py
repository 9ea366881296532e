"""The lowest layer: typed errors, array validation at the boundary, device detection."""
