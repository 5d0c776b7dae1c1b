"""The demo model: synthetic visual questions, its training and its held-out evaluation (import the modules;
`shipped.DEMO_MODEL` is where the trained model lives)."""
