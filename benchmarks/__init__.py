"""Side-by-side measurements of gan-edge against what users would otherwise run."""
