"""The gateway's work for one chat request, from validated body to streamed outputs."""
