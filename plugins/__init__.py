"""Built-in adapters, one package per kind of agency system."""
