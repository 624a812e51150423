"""The status engine, pure (DESIGN §2): check_state (a result → a check's state), overrides (declared and
maintenance), aggregate (checks → flows → lines → networks, the recovery rule), graph (who feeds whom, and
re-deriving only what a change reaches), check_tally (a flow over its checks, one check at a time), timers (what
falls due when). Nothing here reads a clock or I/O."""
