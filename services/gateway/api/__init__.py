"""The OpenAI wire: request and response schemas, what a request's checks report, the error envelope and its
mapping."""
