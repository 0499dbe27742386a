"""Stage 2: Spec -> symbolic graph (layers, networks, objectives, updates)."""
