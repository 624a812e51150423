"""Fault tests with real processes (issue 11) against the listeners and the store (cut, hung, full disk); a package so
that its helpers import as `.attackers` and `.store_fault_support`."""
