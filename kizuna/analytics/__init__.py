"""Analyses of customers and orders (RFM, deciles, ...): each is a spec, one Ibis expression and a typed result,
shared by the CLI, the API and the UI; ``engine`` says where they run."""
