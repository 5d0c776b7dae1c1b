"""What the gateway records about each request: its log line and span, response headers, metrics."""
