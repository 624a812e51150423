"""Tests of the probes against real loopback servers: a package so that its helpers import as `.probe_targets`."""
