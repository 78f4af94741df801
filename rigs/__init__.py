"""Test rigs: test signals, virtual front-end sources, the demo examination and the
bedside page's browser rig. They drive the box; the box never imports them."""
