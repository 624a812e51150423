"""Tests of the stores (SQLite and PostgreSQL): a package so that its helpers import as `.store_support`."""
