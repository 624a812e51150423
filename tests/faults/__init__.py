"""Fault tests with real processes (issue 11): a package so that its helpers import as `.attackers`."""
