"""Hand-written reference loops and models that crossloop is measured against (not shipped)."""
