"""The OpenAI wire: request and response schemas, the error envelope and its mapping, the routes."""
