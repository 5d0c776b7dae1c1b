"""flashvqa: low-latency image question answering on Ray Serve."""
