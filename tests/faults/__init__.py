"""The fault suite: real processes against a database cut, hung or on a full disk; a package so that its helpers
import as `.store_fault_support`."""
