"""Who may write, pure: staff roles and machine scopes, passwords (Argon2id), the TOTP second factor, session and
CSRF tokens, machine tokens, throttles in memory, and the audit trail's events."""
