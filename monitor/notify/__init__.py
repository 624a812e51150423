"""What is worth telling and how it reads: outbox events, scopes, signed links, messages and webhook payloads (pure)."""
