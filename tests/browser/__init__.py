"""Real-browser tests of the public pages (Chromium driven by Playwright, axe-core)."""
