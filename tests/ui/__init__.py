"""Dashboard tests: HTTP-level (auth, CSRF, rendering) and in Debian chromium (Playwright)."""
