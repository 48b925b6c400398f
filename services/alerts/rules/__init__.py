"""Alert rules: their kinds (a registry by ``kind``), the rule set files and the engine
that judges a score change by them."""
