"""xling: measure how learning transfers across languages and tasks."""

__version__ = "0.1.0"
