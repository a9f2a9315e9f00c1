"""Kill-everything chaos suite: ``make chaos`` runs the full configuration."""
