"""Hive: turn your WhatsApp chat exports into a LoRA fine-tuned model that texts like you."""

__version__ = "0.2.0"
