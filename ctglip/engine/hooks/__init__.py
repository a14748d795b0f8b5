"""Hooks of ctglip's training runs."""
