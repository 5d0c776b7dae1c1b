"""Who may send a request now, and how much of one: API keys, rate limits, body size, requests in flight,
deadlines, and the door the Serve proxy runs in front of the gateway."""
