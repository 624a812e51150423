"""Delivery: what takes events from the store's outbox to people and machines (e-mail, webhooks, chat), and the
public subscription desk behind the web forms."""
