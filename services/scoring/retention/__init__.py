"""Revenue retention (GRR, NRR) and renewals, in one home currency."""
