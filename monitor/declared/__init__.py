"""What ops declare, pure: incidents with their updates and consignes, maintenance windows, and the checks of what they
may write (bilingual texts, moments, component names)."""
