"""Legacy completions (``POST /v1/completions``) for chat-only models, through the chat hub."""
