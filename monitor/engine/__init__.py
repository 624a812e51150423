"""The status engine, pure (DESIGN §2): check_state (a result → a check's state), overrides (declared and
maintenance), aggregate (checks → flows → lines → networks, the recovery rule). Nothing here reads a clock or I/O."""
