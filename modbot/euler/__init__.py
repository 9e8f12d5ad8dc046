"""The Euler Stream edge: HTTP client, OAuth, WebSocket source, and their pure policies."""
