"""Card rules, the card vault and gateway adapters. Framework-free: never imports Flask."""
